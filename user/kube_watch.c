// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "kube_watch.h"
#include "log.h"

#define KW_PAGE_LIMIT 500                /* items per list page */
#define KW_MAX_BODY (256u << 20)         /* one list page */
#define KW_MAX_LINE (16u << 20)          /* one watch event */
#define KW_MAX_ERROR_BODY 65536u         /* a non-200 answer: enough for its Status */
#define KW_KEEP_BUF (1u << 20)           /* a bigger buffer is freed after its request */
#define KW_BACKOFF_MIN_MS 200
#define KW_BACKOFF_MAX_MS 30000
#define KW_WATCH_TIMEOUT_S 300           /* the server ends a watch after about this */
#define KW_CONNECT_TIMEOUT_MS 5000
#define KW_LIST_TIMEOUT_MS 60000
#define KW_POLL_MS 1000

struct store {
	struct or_k8s_object **v; /* sorted by (namespace, name) */
	size_t n, cap;
};

enum kw_abort { KW_OK, KW_GONE, KW_MALFORMED, KW_TOO_BIG, KW_NOMEM, KW_STATUS };

struct watcher {
	struct or_kube *k;
	enum or_k8s_kind kind;
	pthread_t thread;
	bool started;
	CURL *easy;
	CURLM *multi;
	char *rv;           /* the last resourceVersion seen */
	/* the transfer in progress */
	bool watching;
	char *buf;
	size_t len, cap;
	enum kw_abort abort;
	unsigned int lines; /* events handled in this watch */
	unsigned int seed;  /* rand_r: each agent and kind jitters differently */
	char errtext[256];
	struct or_kube_counters c; /* under k->lock */
};

struct or_kube {
	struct or_kube_creds creds;
	char *node;
	int efd;
	atomic_bool stop;
	pthread_mutex_t lock; /* the stores, counters and synced */
	pthread_mutex_t sleep_lock;
	pthread_cond_t sleep_cond;
	struct store store[OR_KUBE_NKINDS];
	bool synced[OR_KUBE_NKINDS];
	struct watcher w[OR_KUBE_NKINDS];
};

static const struct {
	const char *name;
	const char *path;
} kinds[OR_KUBE_NKINDS] = {
	[OR_K8S_POD] = { "pods", "/api/v1/pods" },
	[OR_K8S_NAMESPACE] = { "namespaces", "/api/v1/namespaces" },
	[OR_K8S_SERVICE] = { "services", "/api/v1/services" },
	[OR_K8S_ENDPOINTSLICE] = { "endpointslices", "/apis/discovery.k8s.io/v1/endpointslices" },
};

const char *or_kube_kind_name(enum or_k8s_kind kind)
{
	return (unsigned int)kind < OR_KUBE_NKINDS ? kinds[kind].name : "?";
}

/* ---- the store ---------------------------------------------------------- */

static const struct or_k8s_meta *meta_of(const struct or_k8s_object *o)
{
	switch (o->kind) {
	case OR_K8S_POD:
		return &o->pod.meta;
	case OR_K8S_NAMESPACE:
		return &o->ns.meta;
	case OR_K8S_SERVICE:
		return &o->svc.meta;
	case OR_K8S_ENDPOINTSLICE:
		return &o->slice.meta;
	}
	return NULL;
}

static int key_cmp(const char *ns_a, const char *name_a, const char *ns_b, const char *name_b)
{
	int d = strcmp(ns_a ? ns_a : "", ns_b ? ns_b : "");

	return d ? d : strcmp(name_a ? name_a : "", name_b ? name_b : "");
}

/* The index of (ns, name), or where it would go; *found tells which. */
static size_t store_find(const struct store *s, const char *ns, const char *name, bool *found)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct or_k8s_meta *m = meta_of(s->v[mid]);
		int d = key_cmp(m->namespace, m->name, ns, name);

		if (d == 0) {
			*found = true;
			return mid;
		}
		if (d < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return lo;
}

static void obj_destroy(struct or_k8s_object *o)
{
	if (!o)
		return;
	or_k8s_object_free(o);
	free(o);
}

/* Room for one more object. 0 or -ENOMEM. */
static int store_room(struct store *s)
{
	size_t cap = s->cap ? s->cap * 2 : 64;
	struct or_k8s_object **nv;

	if (s->n < s->cap)
		return 0;
	nv = realloc(s->v, cap * sizeof(*nv));
	if (!nv)
		return -ENOMEM;
	s->v = nv;
	s->cap = cap;
	return 0;
}

/* Takes o (a heap object) into the store, replacing one of the same name. */
static int store_put(struct store *s, struct or_k8s_object *o)
{
	const struct or_k8s_meta *m = meta_of(o);
	bool found;
	size_t i = store_find(s, m->namespace, m->name, &found);

	if (found) {
		obj_destroy(s->v[i]);
		s->v[i] = o;
		return 0;
	}
	if (store_room(s))
		return -ENOMEM;
	memmove(&s->v[i + 1], &s->v[i], (s->n - i) * sizeof(*s->v));
	s->v[i] = o;
	s->n++;
	return 0;
}

static void store_del(struct store *s, const char *ns, const char *name)
{
	bool found;
	size_t i = store_find(s, ns, name, &found);

	if (!found)
		return;
	obj_destroy(s->v[i]);
	memmove(&s->v[i], &s->v[i + 1], (s->n - i - 1) * sizeof(*s->v));
	s->n--;
}

static void store_clear(struct store *s)
{
	for (size_t i = 0; i < s->n; i++)
		obj_destroy(s->v[i]);
	free(s->v);
	memset(s, 0, sizeof(*s));
}

static int obj_cmp(const void *a, const void *b)
{
	const struct or_k8s_meta *ma = meta_of(*(struct or_k8s_object *const *)a);
	const struct or_k8s_meta *mb = meta_of(*(struct or_k8s_object *const *)b);

	return key_cmp(ma->namespace, ma->name, mb->namespace, mb->name);
}

/* Moves an object out of a decoder-owned struct onto the heap. */
static struct or_k8s_object *obj_take(struct or_k8s_object *o)
{
	struct or_k8s_object *h = malloc(sizeof(*h));
	enum or_k8s_kind kind = o->kind;

	if (!h)
		return NULL;
	*h = *o;
	memset(o, 0, sizeof(*o));
	o->kind = kind;
	return h;
}

static void notify(struct or_kube *k)
{
	uint64_t one = 1;

	if (write(k->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		or_warn("kubernetes: cannot signal a change", "err=\"%s\"", strerror(errno));
}

/* ---- requests ----------------------------------------------------------- */

static bool stopping(const struct or_kube *k)
{
	return atomic_load(&k->stop);
}

/* Sleeps ms, or less when the watchers are stopped. */
static void nap(struct or_kube *k, unsigned int ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&k->sleep_lock);
	while (!stopping(k))
		if (pthread_cond_timedwait(&k->sleep_cond, &k->sleep_lock, &ts) == ETIMEDOUT)
			break;
	pthread_mutex_unlock(&k->sleep_lock);
}

/* Jittered exponential backoff: half the step, plus up to the other half. */
static unsigned int backoff_next(struct watcher *w, unsigned int *step)
{
	unsigned int d = *step;

	*step = d * 2 > KW_BACKOFF_MAX_MS ? KW_BACKOFF_MAX_MS : d * 2;
	return d / 2 + (unsigned int)rand_r(&w->seed) % (d / 2 + 1);
}

static int buf_add(struct watcher *w, const char *p, size_t n, size_t max)
{
	if (w->len + n + 1 > max)
		return -E2BIG;
	if (w->len + n + 1 > w->cap) {
		size_t cap = w->cap ? w->cap : 65536;
		char *nb;

		while (cap < w->len + n + 1)
			cap *= 2;
		nb = realloc(w->buf, cap);
		if (!nb)
			return -ENOMEM;
		w->buf = nb;
		w->cap = cap;
	}
	memcpy(w->buf + w->len, p, n);
	w->len += n;
	w->buf[w->len] = '\0';
	return 0;
}

static long response_code(struct watcher *w)
{
	long code = 0;

	curl_easy_getinfo(w->easy, CURLINFO_RESPONSE_CODE, &code);
	return code;
}

/* One watch event line: into the store. Returns false to end the watch. */
static bool handle_line(struct watcher *w, const char *line, size_t len)
{
	struct or_kube *k = w->k;
	struct or_k8s_event ev;
	struct or_k8s_object *o;
	char err[256];
	int ret;

	while (len && (line[len - 1] == '\r' || line[len - 1] == ' '))
		len--;
	if (!len)
		return true;
	ret = or_k8s_decode_event(w->kind, line, len, &ev, err, sizeof(err));
	if (ret) {
		w->abort = ret == -ENOMEM ? KW_NOMEM : KW_MALFORMED;
		snprintf(w->errtext, sizeof(w->errtext), "%s", err);
		return false;
	}
	w->lines++;
	switch (ev.type) {
	case OR_K8S_BOOKMARK:
		break;
	case OR_K8S_ERROR:
		w->abort = ev.error_code == 410 ? KW_GONE : KW_STATUS;
		snprintf(w->errtext, sizeof(w->errtext), "code %d: %s", ev.error_code,
			 ev.error_message ? ev.error_message : "");
		or_k8s_event_free(&ev);
		return false;
	case OR_K8S_ADDED:
	case OR_K8S_MODIFIED:
	case OR_K8S_DELETED:
		pthread_mutex_lock(&k->lock);
		if (ev.type == OR_K8S_DELETED) {
			const struct or_k8s_meta *m = meta_of(&ev.obj);

			store_del(&k->store[w->kind], m->namespace, m->name);
			ret = 0;
		} else {
			o = obj_take(&ev.obj);
			ret = o ? store_put(&k->store[w->kind], o) : -ENOMEM;
			if (ret)
				obj_destroy(o);
		}
		w->c.events++;
		w->c.objects = k->store[w->kind].n;
		pthread_mutex_unlock(&k->lock);
		if (ret) {
			/* The store missed this event: only a relist puts it right. */
			w->abort = KW_NOMEM;
			or_k8s_event_free(&ev);
			return false;
		}
		notify(k);
		break;
	}
	if (ev.resource_version && *ev.resource_version) {
		free(w->rv);
		w->rv = ev.resource_version;
		ev.resource_version = NULL;
	}
	or_k8s_event_free(&ev);
	return true;
}

static size_t on_data(char *p, size_t size, size_t nmemb, void *ctx)
{
	struct watcher *w = ctx;
	size_t n = size * nmemb;
	int ret;

	/* Not a 200 (a Status body, or a proxy's page): keep it for the message. */
	if (!w->watching || response_code(w) != 200) {
		ret = buf_add(w, p, n, response_code(w) != 200 ? KW_MAX_ERROR_BODY : KW_MAX_BODY);
		if (ret) {
			w->abort = ret == -ENOMEM ? KW_NOMEM : KW_TOO_BIG;
			return 0;
		}
		return n;
	}
	/* A watch: complete lines are events; a partial one waits for the rest. */
	for (size_t off = 0; off < n;) {
		const char *nl = memchr(p + off, '\n', n - off);
		size_t take = nl ? (size_t)(nl - (p + off)) : n - off;

		ret = buf_add(w, p + off, take, KW_MAX_LINE);
		if (ret) {
			w->abort = ret == -ENOMEM ? KW_NOMEM : KW_TOO_BIG;
			return 0;
		}
		off += take;
		if (!nl)
			break;
		off++; /* the newline */
		if (!handle_line(w, w->buf, w->len))
			return 0;
		w->len = 0;
	}
	return n;
}

static int on_progress(void *ctx, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	struct watcher *w = ctx;

	return stopping(w->k);
}

/* "https://server/path?query"; NULL on ENOMEM. */
static char *make_url(struct watcher *w, bool watch, const char *cont)
{
	struct or_kube *k = w->k;
	char *node = NULL, *c = NULL, *rv = NULL, *url = NULL;
	char sel[600] = "";
	int n;

	if (w->kind == OR_K8S_POD) {
		node = curl_easy_escape(w->easy, k->node, 0);
		if (!node)
			goto out;
		snprintf(sel, sizeof(sel), "fieldSelector=spec.nodeName%%3D%s&", node);
	}
	if (cont) {
		c = curl_easy_escape(w->easy, cont, 0);
		if (!c)
			goto out;
	}
	if (w->rv) {
		rv = curl_easy_escape(w->easy, w->rv, 0);
		if (!rv)
			goto out;
	}
	if (watch)
		/* Spread the watches' ends, as client-go does. */
		n = asprintf(&url,
			     "%s%s?%swatch=true&allowWatchBookmarks=true&resourceVersion=%s"
			     "&timeoutSeconds=%d",
			     k->creds.server, kinds[w->kind].path, sel, rv ? rv : "",
			     KW_WATCH_TIMEOUT_S + (int)(rand_r(&w->seed) % KW_WATCH_TIMEOUT_S));
	else
		n = asprintf(&url, "%s%s?%slimit=%d%s%s", k->creds.server, kinds[w->kind].path,
			     sel, KW_PAGE_LIMIT, c ? "&continue=" : "", c ? c : "");
	if (n < 0)
		url = NULL;
out:
	curl_free(node);
	curl_free(c);
	curl_free(rv);
	return url;
}

static int set_tls(struct watcher *w)
{
	const struct or_kube_creds *cr = &w->k->creds;
	CURL *h = w->easy;

	if (cr->ca_file)
		curl_easy_setopt(h, CURLOPT_CAINFO, cr->ca_file);
	if (cr->ca_pem) {
		struct curl_blob b = { cr->ca_pem, cr->ca_pem_len, CURL_BLOB_COPY };

		if (curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &b) != CURLE_OK)
			return -ENOTSUP;
	}
	if (cr->cert_file) {
		curl_easy_setopt(h, CURLOPT_SSLCERT, cr->cert_file);
		curl_easy_setopt(h, CURLOPT_SSLKEY, cr->key_file);
	}
	if (cr->cert_pem) {
		struct curl_blob c = { cr->cert_pem, cr->cert_pem_len, CURL_BLOB_COPY };
		struct curl_blob kb = { cr->key_pem, cr->key_pem_len, CURL_BLOB_COPY };

		if (curl_easy_setopt(h, CURLOPT_SSLCERT_BLOB, &c) != CURLE_OK ||
		    curl_easy_setopt(h, CURLOPT_SSLKEY_BLOB, &kb) != CURLE_OK)
			return -ENOTSUP;
		curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
		curl_easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM");
	}
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, cr->insecure ? 0L : 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, cr->insecure ? 0L : 2L);
	curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	return 0;
}

/*
 * One request, run until it ends or the watchers stop. Returns the curl
 * result; the HTTP status is in *code (0 when none arrived).
 */
static CURLcode request(struct watcher *w, const char *url, bool watch, long *code)
{
	struct curl_slist *hdrs = NULL, *nh;
	CURLcode res = CURLE_OK;
	char *token = NULL, *auth = NULL;
	CURLMsg *msg;
	int running = 1, left;

	*code = 0;
	w->watching = watch;
	w->len = 0;
	w->abort = KW_OK;
	w->lines = 0;
	w->errtext[0] = '\0';
	if (or_kube_creds_token(&w->k->creds, &token) == 0 && token &&
	    asprintf(&auth, "Authorization: Bearer %s", token) < 0)
		auth = NULL;
	free(token);
	hdrs = curl_slist_append(NULL, "Accept: application/json");
	if (hdrs && auth && (nh = curl_slist_append(hdrs, auth)))
		hdrs = nh;
	free(auth);
	if (!hdrs)
		return CURLE_OUT_OF_MEMORY;

	curl_easy_setopt(w->easy, CURLOPT_URL, url);
	curl_easy_setopt(w->easy, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(w->easy, CURLOPT_TIMEOUT_MS, watch ? 0L : (long)KW_LIST_TIMEOUT_MS);
	curl_multi_add_handle(w->multi, w->easy);
	while (running && !stopping(w->k)) {
		if (curl_multi_perform(w->multi, &running) != CURLM_OK)
			break;
		if (running)
			curl_multi_poll(w->multi, NULL, 0, KW_POLL_MS, NULL);
	}
	res = stopping(w->k) ? CURLE_ABORTED_BY_CALLBACK : CURLE_RECV_ERROR;
	while ((msg = curl_multi_info_read(w->multi, &left)))
		if (msg->msg == CURLMSG_DONE && msg->easy_handle == w->easy)
			res = msg->data.result;
	*code = response_code(w);
	if (watch && res == CURLE_OK && *code == 200 && w->abort == KW_OK && w->len) {
		/* The stream ended inside an event: not a watch stream we understand. */
		w->abort = KW_MALFORMED;
		snprintf(w->errtext, sizeof(w->errtext), "stream ended inside an event (%zu bytes)",
			 w->len);
	}
	curl_multi_remove_handle(w->multi, w->easy);
	curl_easy_setopt(w->easy, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(hdrs);
	return res;
}

/* Why a request failed, for the log: curl's reason or the Status message. */
static void describe(struct watcher *w, CURLcode res, long code, char *out, size_t len)
{
	if (w->abort == KW_TOO_BIG && code != 200)
		snprintf(out, len, "HTTP %ld with a body over %u bytes", code, KW_MAX_ERROR_BODY);
	else if (w->abort == KW_TOO_BIG)
		snprintf(out, len, "%s larger than %u bytes", w->watching ? "a watch event" : "a list page",
			 w->watching ? KW_MAX_LINE : KW_MAX_BODY);
	else if (w->abort == KW_NOMEM)
		snprintf(out, len, "out of memory");
	else if (w->abort == KW_MALFORMED || w->abort == KW_STATUS || w->abort == KW_GONE)
		snprintf(out, len, "%s", w->errtext);
	else if (res != CURLE_OK)
		snprintf(out, len, "%s", curl_easy_strerror(res));
	else if (code != 200) {
		char *msg = NULL;
		int st;

		/* A v1 Status says why; any other body is shown as it came. */
		if (w->buf && or_k8s_decode_status(w->buf, w->len, &st, &msg) == 0 && msg)
			snprintf(out, len, "HTTP %ld: %s", code, msg);
		else
			snprintf(out, len, "HTTP %ld: %.*s", code, w->len > 200 ? 200 : (int)w->len,
				 w->buf ? w->buf : "");
		free(msg);
		for (char *p = out; *p; p++)
			if (*p == '"' || *p == '\n' || *p == '\r')
				*p = '\'';
	} else {
		snprintf(out, len, "stream ended");
	}
}

struct list_ctx {
	struct store *s;
	int err;
};

static int list_item(void *ctx, struct or_k8s_object *o)
{
	struct list_ctx *lc = ctx;
	struct store *s = lc->s;
	struct or_k8s_object *h;

	if (store_room(s))
		return -ENOMEM;
	h = obj_take(o);
	if (!h)
		return -ENOMEM;
	s->v[s->n++] = h;
	return 0;
}

static void buf_trim(struct watcher *w)
{
	if (w->cap > KW_KEEP_BUF) {
		free(w->buf);
		w->buf = NULL;
		w->len = w->cap = 0;
	}
}

/* Lists every page into a new store; on success it replaces the old one. */
static int do_list(struct watcher *w, char *why, size_t whylen)
{
	struct or_kube *k = w->k;
	struct store fresh = {};
	char *cont = NULL, *rv = NULL;
	size_t total_skipped = 0;
	int ret = 0;

	for (;;) {
		char *url = make_url(w, false, cont);
		struct list_ctx lc = { &fresh, 0 };
		size_t skipped = 0;
		char err[256];
		long code;
		CURLcode res;

		if (!url) {
			ret = -ENOMEM;
			snprintf(why, whylen, "out of memory");
			break;
		}
		res = request(w, url, false, &code);
		free(url);
		if (res != CURLE_OK || code != 200 || w->abort != KW_OK) {
			describe(w, res, code, why, whylen);
			ret = code == 410 ? -ESTALE : -EIO;
			break;
		}
		free(rv);
		rv = NULL;
		ret = or_k8s_decode_list(w->kind, w->buf ? w->buf : "", w->len, list_item, &lc, &rv,
					 &skipped, err, sizeof(err));
		if (ret) {
			snprintf(why, whylen, "malformed list: %s", err);
			pthread_mutex_lock(&k->lock);
			w->c.malformed++;
			pthread_mutex_unlock(&k->lock);
			ret = -EBADMSG;
			break;
		}
		if (skipped) {
			total_skipped += skipped;
			or_warn("kubernetes: list items skipped", "kind=%s skipped=%zu first=\"%s\"",
				kinds[w->kind].name, skipped, err);
		}
		free(cont);
		cont = NULL;
		ret = or_k8s_list_continue(w->buf ? w->buf : "", w->len, &cont);
		if (ret) {
			snprintf(why, whylen, "cannot read metadata.continue");
			ret = -EBADMSG;
			break;
		}
		if (!cont)
			break;
	}
	free(cont);
	buf_trim(w);
	if (ret) {
		store_clear(&fresh);
		free(rv);
		return ret;
	}
	qsort(fresh.v, fresh.n, sizeof(*fresh.v), obj_cmp);
	/* Pages may overlap when objects move; keep the last of each name. */
	for (size_t i = 1; i < fresh.n;) {
		if (obj_cmp(&fresh.v[i - 1], &fresh.v[i]) == 0) {
			obj_destroy(fresh.v[i - 1]);
			memmove(&fresh.v[i - 1], &fresh.v[i], (fresh.n - i) * sizeof(*fresh.v));
			fresh.n--;
		} else {
			i++;
		}
	}
	pthread_mutex_lock(&k->lock);
	store_clear(&k->store[w->kind]);
	k->store[w->kind] = fresh;
	k->synced[w->kind] = true;
	w->c.lists++;
	w->c.objects = fresh.n;
	w->c.malformed += total_skipped;
	pthread_mutex_unlock(&k->lock);
	free(w->rv);
	w->rv = rv;
	notify(k);
	return 0;
}

static void count_failure(struct watcher *w, bool malformed)
{
	pthread_mutex_lock(&w->k->lock);
	w->c.failures++;
	if (malformed)
		w->c.malformed++;
	pthread_mutex_unlock(&w->k->lock);
}

static void *watcher_main(void *arg)
{
	struct watcher *w = arg;
	struct or_kube *k = w->k;
	const char *kind = kinds[w->kind].name;
	unsigned int step = KW_BACKOFF_MIN_MS, failures = 0;
	bool need_list = true, relist = false;
	char why[512];

	while (!stopping(k)) {
		char *url;
		CURLcode res;
		long code;
		size_t n;

		if (need_list) {
			int ret = do_list(w, why, sizeof(why));

			if (stopping(k))
				break;
			if (ret) {
				unsigned int ms = backoff_next(w, &step);

				count_failure(w, false);
				or_warn("kubernetes: list failed; retrying", "kind=%s error=\"%s\" "
					"attempt=%u retry_in_ms=%u", kind, why, ++failures, ms);
				nap(k, ms);
				continue;
			}
			pthread_mutex_lock(&k->lock);
			n = k->store[w->kind].n;
			pthread_mutex_unlock(&k->lock);
			or_info(relist ? "kubernetes: relisted" : "kubernetes: listed",
				"kind=%s objects=%zu resource_version=%s", kind, n,
				w->rv ? w->rv : "");
			if (relist) {
				pthread_mutex_lock(&k->lock);
				w->c.relists++;
				pthread_mutex_unlock(&k->lock);
			}
			need_list = relist = false;
			failures = 0;
			step = KW_BACKOFF_MIN_MS;
		}

		url = make_url(w, true, NULL);
		if (!url) {
			nap(k, backoff_next(w, &step));
			continue;
		}
		pthread_mutex_lock(&k->lock);
		w->c.watches++;
		pthread_mutex_unlock(&k->lock);
		res = request(w, url, true, &code);
		free(url);
		if (stopping(k))
			break;
		if (w->lines)
			step = KW_BACKOFF_MIN_MS; /* the stream worked for a while */

		if (w->abort == KW_GONE || code == 410) {
			or_info("kubernetes: resource version expired; relisting",
				"kind=%s resource_version=%s", kind, w->rv ? w->rv : "");
			need_list = relist = true;
			continue;
		}
		if (w->abort == KW_NOMEM) {
			or_error("kubernetes: out of memory in a watch; relisting", "kind=%s", kind);
			need_list = relist = true;
			nap(k, backoff_next(w, &step));
			continue;
		}
		if (w->abort == KW_OK && res == CURLE_OK && code == 200) {
			/* The server ended the watch (timeoutSeconds): watch again at once,
			 * unless it ended with nothing in it (then something is off: wait). */
			or_debug("kubernetes: watch ended; resuming", "kind=%s resource_version=%s "
				 "events=%u", kind, w->rv ? w->rv : "", w->lines);
			failures = 0;
			if (!w->lines)
				nap(k, backoff_next(w, &step));
			continue;
		}
		describe(w, res, code, why, sizeof(why));
		count_failure(w, w->abort == KW_MALFORMED);
		buf_trim(w);
		{
			unsigned int ms = backoff_next(w, &step);

			/*
			 * An event we cannot read would come back on every resume from
			 * the same resourceVersion: relist instead (the list skips
			 * what it cannot read, and counts it).
			 */
			if (w->abort == KW_MALFORMED || w->abort == KW_TOO_BIG)
				need_list = relist = true;
			or_warn(w->abort == KW_MALFORMED ? "kubernetes: malformed watch event; relisting"
							 : "kubernetes: watch failed; reconnecting",
				"kind=%s error=\"%s\" resource_version=%s attempt=%u retry_in_ms=%u",
				kind, why, w->rv ? w->rv : "", ++failures, ms);
			nap(k, ms);
		}
	}
	return NULL;
}

/* ---- life --------------------------------------------------------------- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_res;

static void curl_init_once(void)
{
	curl_init_res = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static int watcher_init(struct or_kube *k, struct watcher *w, enum or_k8s_kind kind)
{
	w->k = k;
	w->kind = kind;
	if (getrandom(&w->seed, sizeof(w->seed), 0) != sizeof(w->seed))
		w->seed = (unsigned int)getpid() ^ (unsigned int)kind * 2654435761u;
	w->easy = curl_easy_init();
	w->multi = curl_multi_init();
	if (!w->easy || !w->multi)
		return -ENOMEM;
	curl_easy_setopt(w->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(w->easy, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(w->easy, CURLOPT_WRITEDATA, w);
	curl_easy_setopt(w->easy, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(w->easy, CURLOPT_XFERINFODATA, w);
	curl_easy_setopt(w->easy, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(w->easy, CURLOPT_CONNECTTIMEOUT_MS, (long)KW_CONNECT_TIMEOUT_MS);
	curl_easy_setopt(w->easy, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(w->easy, CURLOPT_TCP_KEEPIDLE, 30L);
	curl_easy_setopt(w->easy, CURLOPT_TCP_KEEPINTVL, 10L);
	curl_easy_setopt(w->easy, CURLOPT_USERAGENT, "outriderd");
	curl_easy_setopt(w->easy, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(w->easy, CURLOPT_FOLLOWLOCATION, 0L);
	return set_tls(w);
}

int or_kube_start(struct or_kube_creds *creds, const char *node, struct or_kube **out)
{
	struct or_kube *k;
	int err = -ENOMEM;

	*out = NULL;
	pthread_once(&curl_once, curl_init_once);
	if (curl_init_res != CURLE_OK)
		return -EIO;
	k = calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	k->creds = *creds;
	memset(creds, 0, sizeof(*creds));
	k->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	k->node = strdup(node);
	pthread_mutex_init(&k->lock, NULL);
	pthread_mutex_init(&k->sleep_lock, NULL);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&k->sleep_cond, &ca);
		pthread_condattr_destroy(&ca);
	}
	if (k->efd == -1) {
		err = -errno;
		goto fail;
	}
	if (!k->node)
		goto fail;
	for (int i = 0; i < OR_KUBE_NKINDS; i++) {
		err = watcher_init(k, &k->w[i], (enum or_k8s_kind)i);
		if (err)
			goto fail;
	}
	for (int i = 0; i < OR_KUBE_NKINDS; i++) {
		err = -pthread_create(&k->w[i].thread, NULL, watcher_main, &k->w[i]);
		if (err)
			goto fail;
		k->w[i].started = true;
	}
	or_info("kubernetes: watching", "server=%s credentials=\"%s\" node=%s", k->creds.server,
		k->creds.source ? k->creds.source : "", k->node);
	*out = k;
	return 0;
fail:
	or_kube_stop(k);
	return err;
}

void or_kube_stop(struct or_kube *k)
{
	if (!k)
		return;
	atomic_store(&k->stop, true);
	pthread_mutex_lock(&k->sleep_lock);
	pthread_cond_broadcast(&k->sleep_cond);
	pthread_mutex_unlock(&k->sleep_lock);
	for (int i = 0; i < OR_KUBE_NKINDS; i++)
		if (k->w[i].multi)
			curl_multi_wakeup(k->w[i].multi);
	for (int i = 0; i < OR_KUBE_NKINDS; i++) {
		struct watcher *w = &k->w[i];

		if (w->started)
			pthread_join(w->thread, NULL);
		if (w->easy)
			curl_easy_cleanup(w->easy);
		if (w->multi)
			curl_multi_cleanup(w->multi);
		free(w->buf);
		free(w->rv);
		store_clear(&k->store[i]);
	}
	if (k->efd != -1)
		close(k->efd);
	pthread_mutex_destroy(&k->lock);
	pthread_mutex_destroy(&k->sleep_lock);
	pthread_cond_destroy(&k->sleep_cond);
	or_kube_creds_free(&k->creds);
	free(k->node);
	free(k);
}

int or_kube_fd(const struct or_kube *k)
{
	return k->efd;
}

bool or_kube_changed(struct or_kube *k)
{
	uint64_t v;

	return read(k->efd, &v, sizeof(v)) == sizeof(v);
}

bool or_kube_synced(struct or_kube *k)
{
	bool all = true;

	pthread_mutex_lock(&k->lock);
	for (int i = 0; i < OR_KUBE_NKINDS; i++)
		all = all && k->synced[i];
	pthread_mutex_unlock(&k->lock);
	return all;
}

void or_kube_lock(struct or_kube *k)
{
	pthread_mutex_lock(&k->lock);
}

void or_kube_unlock(struct or_kube *k)
{
	pthread_mutex_unlock(&k->lock);
}

size_t or_kube_count(const struct or_kube *k, enum or_k8s_kind kind)
{
	return (unsigned int)kind < OR_KUBE_NKINDS ? k->store[kind].n : 0;
}

const struct or_k8s_object *or_kube_at(const struct or_kube *k, enum or_k8s_kind kind, size_t i)
{
	return i < or_kube_count(k, kind) ? k->store[kind].v[i] : NULL;
}

const struct or_k8s_object *or_kube_get(const struct or_kube *k, enum or_k8s_kind kind,
					const char *ns, const char *name)
{
	bool found;
	size_t i;

	if ((unsigned int)kind >= OR_KUBE_NKINDS)
		return NULL;
	i = store_find(&k->store[kind], ns, name, &found);
	return found ? k->store[kind].v[i] : NULL;
}

void or_kube_counters(struct or_kube *k, enum or_k8s_kind kind, struct or_kube_counters *out)
{
	memset(out, 0, sizeof(*out));
	if ((unsigned int)kind >= OR_KUBE_NKINDS)
		return;
	pthread_mutex_lock(&k->lock);
	*out = k->w[kind].c;
	pthread_mutex_unlock(&k->lock);
}
