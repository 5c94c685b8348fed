// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * One downstream HTTP/1.1 connection at a time per struct or_hconn:
 *
 *   read the request head (<= 60 KiB) and body; bodies up to max_body_bytes
 *   are held whole so a try can be repeated; a bigger one is streamed to a
 *   single try and never retried
 *     -> try: pick a healthy endpoint (not tried yet if possible), take a
 *        pooled connection or connect from inside the pod's netns, send the
 *        rebuilt head with x-outrider-attempt: N, then the body
 *     -> the response head decides: a retriable status (or a connect
 *        failure, reset, per-try timeout before it) -> backoff, next try;
 *        otherwise it is committed and streamed to the app as received
 *   local replies: 400/431 bad request, 408 (no whole head within
 *   limits.header_timeout_ms), 503 (no healthy endpoint, overflow, overload,
 *   failures), 504 (timeout_ms over), 502 (bad response).
 *
 * Limits. The request buffer `in` never grows past limits.buffer_bytes (at
 * least a whole head and a little more): a body bigger than what is left
 * of it, or than max_body_bytes, is streamed to one try instead of held,
 * and a full buffer stops reading (backpressure). Upstream responses pass
 * through a fixed RBUF_CAP. The clock for a request head starts at accept
 * (first request) or with the first byte of a later one; an idle
 * keep-alive connection between requests has the service's idle timeout.
 * While the agent drains, each response goes out with `connection: close`
 * and the connection closes after it; idle ones close within DRAIN_IDLE_MS.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "health.h"
#include "http.h"
#include "http_proxy.h"
#include "log.h"
#include "overload.h"
#include "proxy.h"
#include "sock.h"
#include "upstream.h"

#define RBUF_CAP (64 * 1024)    /* response bytes between upstream and app */
#define RBUF_SLACK OR_HTTP_CLOSE_GROWTH /* past RBUF_CAP: room for connection: close */
#define POOL_MAX 64             /* idle upstream connections per worker */
#define POOL_IDLE_MS 30000      /* dropped when idle longer */
#define LINGER_MS 1000          /* draining the app after a final reply */
#define DRAIN_IDLE_MS 1000      /* agent draining: an idle keep-alive connection lives on this long */

enum rq_state { RQ_HEAD, RQ_BODY, RQ_DONE };
enum try_state { TRY_NONE, TRY_BACKOFF, TRY_CONNECTING, TRY_ACTIVE, TRY_COMMITTED };

struct or_pooled {
	struct or_pooled *next;
	struct or_pod_rt *pod; /* reference: the socket lives in its netns */
	struct or_ip ip;
	uint16_t port;
	int fd;
	uint64_t since_ms;
};

struct or_hconn {
	struct or_worker *w;
	struct or_hconn *prev, *next;
	struct ev_io dn, up;
	struct ev_timer t_req; /* idle between requests, head timeout, then timeout_ms of a request */
	struct ev_timer t_try; /* connect timeout / per-try timeout / backoff */
	struct ev_deferred defer;
	struct or_pod_rt *pod;
	struct or_routes *routes;
	struct or_route *rt;
	bool closed;
	bool dn_eof;    /* the app closed its side */
	bool lingering; /* final reply sent: drain the app until EOF or LINGER_MS */
	bool draining;  /* or_http_drain(): the next answer is the last */

	/* The request: raw bytes from the app, head then body then what follows. */
	char *in;
	size_t in_len, in_cap;
	size_t head_len, body_len;
	struct or_http_msg req;
	enum rq_state rq;
	bool streaming;     /* body over max_body_bytes: one try, forwarded as it comes */
	bool sent_continue; /* we answered Expect: 100-continue ourselves */
	bool active;        /* counted in active_requests */
	bool buf_counted;   /* this request's buffer_limit is counted */
	size_t stream_held; /* streaming: body bytes at in[head_len..) framed, not yet sent */
	char *uhead;        /* rebuilt head, without x-outrider-attempt and final CRLF */
	size_t uhead_len;

	/* The try in flight. */
	enum try_state ts;
	int ep;
	bool probe;
	bool in_retry;
	bool pooled_fd;
	uint32_t tries;
	uint64_t tried;
	char *ubuf; /* what the try sends first: the head with its attempt header */
	size_t ubuf_len, ubuf_off;
	size_t body_sent; /* then the held body, straight from `in`: bytes of it sent */
	bool up_sent;

	/* The response. */
	struct or_http_msg resp;
	char *rbuf;
	size_t rlen, rparsed, rsent;
	int status;

	/* A reply of our own (and 100 Continue). */
	char *lbuf;
	size_t llen, loff;
	bool close_after; /* close once what is queued for the app is out */
	bool reset_after; /* the answer was cut short upstream: reset once its bytes are out */
};

static void hc_update(struct or_hconn *c);
static void start_try(struct or_hconn *c);
static void next_request(struct or_hconn *c);
static bool up_pending(const struct or_hconn *c);

/* ---- upstream connection pool (per worker, so no locks) ---- */

static void pooled_free(struct or_pooled *p)
{
	close(p->fd);
	or_pod_rt_put(p->pod);
	free(p);
}

/* An idle connection to ep made in pod's netns, still open; or -1. */
static int pool_take(struct or_worker *w, struct or_pod_rt *pod, const struct or_route_ep *ep,
		     uint64_t now)
{
	struct or_pooled **pp = &w->pool, *p;
	char probe;

	while ((p = *pp)) {
		if (now - p->since_ms > POOL_IDLE_MS) {
			*pp = p->next;
			w->pool_len--;
			pooled_free(p);
			continue;
		}
		if (p->pod != pod || p->port != ep->port || !or_ip_eq(&p->ip, &ep->ip)) {
			pp = &p->next;
			continue;
		}
		*pp = p->next;
		w->pool_len--;
		/* Closed by the server while idle (EOF, or bytes nobody asked for)? */
		if (recv(p->fd, &probe, 1, MSG_PEEK | MSG_DONTWAIT) != -1 || errno != EAGAIN) {
			pooled_free(p);
			continue;
		}
		int fd = p->fd;

		p->fd = -1;
		or_pod_rt_put(p->pod);
		free(p);
		return fd;
	}
	return -1;
}

static void pool_put(struct or_worker *w, struct or_pod_rt *pod, const struct or_route_ep *ep,
		     int fd, uint64_t now)
{
	struct or_pooled *p = calloc(1, sizeof(*p));

	if (!p) {
		close(fd);
		return;
	}
	if (w->pool_len >= POOL_MAX) {
		/* Drop the oldest: the list is newest first. */
		struct or_pooled **pp = &w->pool;

		while ((*pp)->next)
			pp = &(*pp)->next;
		pooled_free(*pp);
		*pp = NULL;
		w->pool_len--;
	}
	or_pod_rt_get(pod);
	p->pod = pod;
	p->ip = ep->ip;
	p->port = ep->port;
	p->fd = fd;
	p->since_ms = now;
	p->next = w->pool;
	w->pool = p;
	w->pool_len++;
}

/* ---- connection lifetime ---- */

static void hc_free(struct ev_deferred *d)
{
	struct or_hconn *c = container_of(d, struct or_hconn, defer);

	or_overload_buffers(-(int64_t)(c->in_cap + (c->rbuf ? RBUF_CAP : 0)));
	or_routes_put(c->routes);
	or_pod_rt_put(c->pod);
	free(c->in);
	free(c->uhead);
	free(c->ubuf);
	free(c->rbuf);
	free(c->lbuf);
	free(c);
}

/* Ends the try in flight; its upstream socket is closed (reset if rst). */
static void end_try(struct or_hconn *c, bool rst)
{
	struct or_route *rt = c->rt;

	ev_timer_stop(c->w->loop, &c->t_try);
	if (c->ts == TRY_CONNECTING)
		atomic_fetch_sub(&rt->metrics->pending, 1);
	if (c->up.fd != -1) {
		ev_io_del(c->w->loop, &c->up);
		if (rst)
			or_sock_close_rst(c->up.fd);
		else
			close(c->up.fd);
		c->up.fd = -1;
	}
	if (c->ep >= 0)
		or_lb_release(&rt->lb, c->ep);
	c->ep = -1;
	if (c->in_retry) {
		or_upstream_retry_done(rt);
		c->in_retry = false;
	}
	c->ts = TRY_NONE;
}

static void request_done(struct or_hconn *c, int code)
{
	if (!c->active)
		return;
	c->active = false;
	atomic_fetch_sub(&c->rt->metrics->active_requests, 1);
	or_metrics_request(c->rt->metrics, code);
}

static void hc_close(struct or_hconn *c, bool rst)
{
	struct or_worker *w = c->w;

	if (c->closed)
		return;
	c->closed = true;
	end_try(c, true);
	request_done(c, 0);
	ev_timer_stop(w->loop, &c->t_req);
	ev_io_del(w->loop, &c->dn);
	if (rst)
		or_sock_close_rst(c->dn.fd);
	else
		close(c->dn.fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		w->hconns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	atomic_fetch_sub(&c->rt->metrics->active_connections, 1);
	atomic_fetch_add(&c->rt->metrics->tcp_closed, 1);
	atomic_fetch_sub(&or_proxy.active, 1);
	ev_defer(w->loop, &c->defer, hc_free);
}

/* The agent drains (or this worker was told to): the answer in flight is the last. */
static bool hc_draining(const struct or_hconn *c)
{
	return c->draining || atomic_load_explicit(&or_proxy.draining, memory_order_relaxed);
}

/* Between requests, with nothing read of the next one and nothing going out. */
static bool hc_idle(const struct or_hconn *c)
{
	return c->rq == RQ_HEAD && c->in_len == 0 && c->ts == TRY_NONE && !c->llen &&
	       !c->lingering;
}

/* ---- replies of our own ---- */

static const char *reason_phrase(int code)
{
	switch (code) {
	case 100: return "Continue";
	case 400: return "Bad Request";
	case 408: return "Request Timeout";
	case 431: return "Request Header Fields Too Large";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	default: return "Error";
	}
}

static int queue_bytes(struct or_hconn *c, const char *buf, size_t len)
{
	char *nb = realloc(c->lbuf, c->llen + len);

	if (!nb)
		return -ENOMEM;
	c->lbuf = nb;
	memcpy(c->lbuf + c->llen, buf, len);
	c->llen += len;
	return 0;
}

/*
 * Answers the request in flight ourselves. `why` goes into the body and
 * x-outrider-reason; overloaded adds x-outrider-overloaded: true. When the
 * request has not been read whole, or on 4xx, the connection closes after.
 */
static void local_reply(struct or_hconn *c, int code, const char *reason, const char *why,
			bool overloaded)
{
	char hdr[512];
	char body[384];
	int blen, hlen;

	end_try(c, true);
	blen = snprintf(body, sizeof(body), "%s: %s\n", c->rt->name, why);
	if (blen < 0 || (size_t)blen >= sizeof(body))
		blen = sizeof(body) - 1;
	if (c->rq != RQ_DONE || code < 500 || code == 504 || hc_draining(c))
		c->close_after = true;
	hlen = snprintf(hdr, sizeof(hdr),
			"HTTP/1.1 %d %s\r\ncontent-type: text/plain\r\ncontent-length: %d\r\n"
			"x-outrider-reason: %s\r\n%s%s\r\n",
			code, reason_phrase(code), blen, reason,
			overloaded ? "x-outrider-overloaded: true\r\n" : "",
			c->close_after ? "connection: close\r\n" : "");
	if (queue_bytes(c, hdr, hlen) || queue_bytes(c, body, blen)) {
		hc_close(c, true);
		return;
	}
	or_debug("local reply", "pod=%s service=%s code=%d reason=%s", c->pod->name, c->rt->name,
		 code, reason);
	ev_timer_stop(c->w->loop, &c->t_req);
	request_done(c, code);
	c->ts = TRY_NONE;
	c->status = code;
	if (!c->close_after)
		next_request(c);
	hc_update(c);
}

/* ---- reading the request ---- */

static bool is_hop_header(const struct or_http_header *h)
{
	return or_http_token_eq(h->name, h->name_len, "x-outrider-attempt") ||
	       or_http_token_eq(h->name, h->name_len, "expect");
}

/* The head as sent upstream: the app's, minus what we answer or set ourselves. */
static int build_uhead(struct or_hconn *c)
{
	const struct or_http_msg *m = &c->req;
	size_t cap = c->head_len + 64, len;
	char *h = malloc(cap);

	if (!h)
		return -ENOMEM;
	len = snprintf(h, cap, "%s %.*s HTTP/%u.%u\r\n", http_method_str(m->p.method),
		       (int)m->url_len, m->url ? m->url : "/", m->p.http_major, m->p.http_minor);
	for (size_t i = 0; i < m->n_hdr && len < cap; i++) {
		const struct or_http_header *hd = &m->hdr[i];

		if (is_hop_header(hd))
			continue;
		len += snprintf(h + len, cap - len, "%.*s: %.*s\r\n", (int)hd->name_len, hd->name,
				(int)hd->value_len, hd->value ? hd->value : "");
	}
	if (len >= cap) {
		free(h);
		return -E2BIG;
	}
	free(c->uhead);
	c->uhead = h;
	c->uhead_len = len;
	return 0;
}

/* Feeds body bytes at in[head_len + body_len ..); returns -1 on a framing error. */
static int take_body(struct or_hconn *c)
{
	size_t at = c->head_len + c->body_len;
	ssize_t n;

	if (c->req.complete || at == c->in_len)
		return 0;
	n = or_http_msg_body(&c->req, c->in + at, c->in_len - at);
	if (n < 0)
		return -1;
	c->body_len += n;
	if (c->req.complete)
		c->rq = RQ_DONE;
	return 0;
}

static void on_req_timeout(struct ev_loop *loop, struct ev_timer *t);
static void on_idle_timeout(struct ev_loop *loop, struct ev_timer *t);

/* A request head is in: check it, count it, and start reading its body. */
static void request_head(struct or_hconn *c, size_t head_len)
{
	struct or_route *rt = c->rt;
	uint64_t now = ev_now_ms(c->w->loop);

	c->head_len = head_len;
	c->body_len = 0;
	or_http_msg_init(&c->req, HTTP_REQUEST, 0);
	c->rq = RQ_BODY;
	if (or_http_msg_head(&c->req, c->in, head_len)) {
		or_debug("bad request", "pod=%s service=%s why=\"%s\"", c->pod->name, rt->name,
			 c->req.why);
		if (strcmp(c->req.why, "too many headers") == 0) {
			or_overload_count(OR_OVERLOAD_HEADER_TOO_LARGE);
			local_reply(c, 431, "header_too_large", "more than 100 request headers",
				    false);
		} else {
			local_reply(c, 400, "bad_request", c->req.why, false);
		}
		return;
	}
	if (c->req.complete)
		c->rq = RQ_DONE;
	if (build_uhead(c)) {
		or_overload_count(OR_OVERLOAD_HEADER_TOO_LARGE);
		local_reply(c, 431, "header_too_large", "request head too large", false);
		return;
	}
	c->active = true;
	atomic_fetch_add(&rt->metrics->active_requests, 1);
	or_budget_request(&rt->budget, now);
	c->tries = 0;
	c->tried = 0;
	c->streaming = false;
	c->sent_continue = false;
	c->buf_counted = false;
	c->status = 0;
	/* timeout_ms covers the whole request, retries included. */
	ev_timer_stop(c->w->loop, &c->t_req);
	c->t_req.cb = on_req_timeout;
	if (rt->policy.timeout_ms)
		ev_timer_start(c->w->loop, &c->t_req, rt->policy.timeout_ms);
	if (or_cb_overflow(rt, OR_CB_MAX_REQUESTS, atomic_load(&rt->metrics->active_requests) - 1)) {
		local_reply(c, 503, "overflow", "too many requests in flight (max_requests)", true);
		return;
	}
	if (take_body(c)) {
		local_reply(c, 400, "bad_request", c->req.why, false);
		return;
	}
	if (c->rq != RQ_DONE && c->req.expect_continue && !c->sent_continue) {
		static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";

		c->sent_continue = true;
		if (queue_bytes(c, cont, sizeof(cont) - 1))
			hc_close(c, true);
	}
}

#define IN_SLACK 4096 /* past a whole head: the start of what follows it */

/* limits.buffer_bytes, but never less than a whole head and a little more. */
static size_t buffer_cap(void)
{
	size_t b = atomic_load_explicit(&or_proxy.buffer_bytes, memory_order_relaxed);

	return b > OR_HTTP_MAX_HEAD + IN_SLACK ? b : OR_HTTP_MAX_HEAD + IN_SLACK;
}

/*
 * How far `in` may grow: a whole head, a body we may hold, and a little
 * more; never past limits.buffer_bytes, which wins over max_body_bytes.
 */
static size_t in_limit(const struct or_hconn *c)
{
	size_t want = OR_HTTP_MAX_HEAD + (size_t)c->rt->policy.retries.max_body_bytes + IN_SLACK;
	size_t cap = buffer_cap();

	return want < cap ? want : cap;
}

/* The next size of `in`, or 0 when it may not grow (limit, or memory). */
static size_t in_next_cap(const struct or_hconn *c)
{
	size_t limit = in_limit(c), cap = c->in_cap ? c->in_cap * 2 : 16384;

	if (c->in_cap >= limit)
		return 0;
	if (cap > limit)
		cap = limit;
	if (!or_overload_may_grow(ev_now_ms(c->w->loop), cap - c->in_cap))
		return 0;
	return cap;
}

/* `in` has room now, or may grow to make some. */
static bool in_room(const struct or_hconn *c)
{
	return c->in_len < c->in_cap || in_next_cap(c);
}

static void arm_head_timer(struct or_hconn *c);
static void arm_idle_timer(struct or_hconn *c);

/* Bytes from the app: the head, the body, or (pipelined) the next request. */
static void read_request(struct or_hconn *c)
{
	bool was_idle = hc_idle(c);
	ssize_t n;

	if (c->in_cap - c->in_len < IN_SLACK) {
		size_t cap = in_next_cap(c);
		char *nb;

		nb = cap ? realloc(c->in, cap) : NULL;
		if (nb) {
			/*
			 * Touched now, so that the cgroup counts it from now:
			 * the memory estimate between readings relies on it.
			 */
			memset(nb + c->in_cap, 0, cap - c->in_cap);
			or_overload_buffers((int64_t)(cap - c->in_cap));
			c->in = nb;
			c->in_cap = cap;
		} else if (cap) {
			hc_close(c, true);
			return;
		}
	}
	if (c->in_len == c->in_cap)
		return; /* full: the try takes bytes out as it streams them */
	n = recv(c->dn.fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n == -1) {
		hc_close(c, true);
		return;
	}
	if (n == 0) {
		c->dn_eof = true;
		if (c->rq == RQ_HEAD && c->in_len == 0 && c->ts == TRY_NONE && !c->llen)
			hc_close(c, false); /* between requests: a clean goodbye */
		else if (c->rq != RQ_DONE)
			hc_close(c, true); /* half a request can never be answered */
		else
			c->close_after = true; /* answer what was asked, then close */
		return;
	}
	c->in_len += n;
	atomic_fetch_add(&c->rt->metrics->bytes_received, n);
	/* The first byte of a request after an idle spell: its head is on the clock now. */
	if (was_idle && c->t_req.cb == on_idle_timeout)
		arm_head_timer(c);
}

/* After reading: find a head, take body bytes, start a try when ready. */
static void advance_request(struct or_hconn *c)
{
	uint32_t max_body = c->rt->policy.retries.max_body_bytes;
	size_t h;

	/* The last answer of this connection is decided: read nothing more. */
	if (c->close_after && c->status)
		return;
	if (c->rq == RQ_HEAD) {
		if (c->ts != TRY_NONE || c->llen)
			return; /* one request at a time: the previous is still going out */
		h = or_http_head_end(c->in, c->in_len < OR_HTTP_MAX_HEAD ? c->in_len
									 : OR_HTTP_MAX_HEAD);
		if (!h) {
			if (c->in_len >= OR_HTTP_MAX_HEAD) {
				c->rq = RQ_BODY;
				or_overload_count(OR_OVERLOAD_HEADER_TOO_LARGE);
				local_reply(c, 431, "header_too_large", "request head over 60 KiB",
					    false);
			}
			return;
		}
		request_head(c, h);
		if (c->closed || c->rq == RQ_HEAD || c->status)
			return;
	} else if (c->rq == RQ_BODY && !c->streaming) {
		if (take_body(c)) {
			local_reply(c, 400, "bad_request", c->req.why, false);
			return;
		}
	}
	if (c->ts != TRY_NONE)
		return;
	if (c->rq == RQ_DONE && c->tries == 0) {
		/* Over max_body_bytes is never retried, however fast it arrived. */
		c->streaming = c->body_len > max_body;
		c->stream_held = 0;
		start_try(c);
	} else if (c->rq == RQ_BODY && c->tries == 0 && (c->body_len > max_body || !in_room(c))) {
		/*
		 * Too big to hold for a retry (over max_body_bytes, or `in` is
		 * full at limits.buffer_bytes or cannot grow for memory): send
		 * it through, once.
		 */
		if (c->body_len <= max_body && !c->buf_counted) {
			c->buf_counted = true;
			or_overload_count(OR_OVERLOAD_BUFFER_LIMIT);
		}
		c->streaming = true;
		c->stream_held = 0;
		start_try(c);
	}
}

/* ---- the try ---- */

static void on_up(struct ev_loop *loop, struct ev_io *io, unsigned int revents);
static void on_try_timer(struct ev_loop *loop, struct ev_timer *t);

/*
 * What this try sends first: the head with its attempt number. The held
 * body follows from `in` itself, so it is never held twice.
 */
static int build_ubuf(struct or_hconn *c)
{
	size_t cap = c->uhead_len + 48;
	char *b = realloc(c->ubuf, cap);
	int n;

	if (!b)
		return -ENOMEM;
	c->ubuf = b;
	memcpy(b, c->uhead, c->uhead_len);
	n = snprintf(b + c->uhead_len, 48, "x-outrider-attempt: %u\r\n\r\n", c->tries);
	c->ubuf_len = c->uhead_len + n;
	c->ubuf_off = 0;
	c->body_sent = 0;
	c->up_sent = false;
	return 0;
}

static void try_active(struct or_hconn *c)
{
	uint32_t per_try = c->rt->policy.retries.per_try_timeout_ms;

	c->ts = TRY_ACTIVE;
	ev_timer_stop(c->w->loop, &c->t_try);
	if (per_try)
		ev_timer_start(c->w->loop, &c->t_try, per_try);
	or_http_msg_init(&c->resp, HTTP_RESPONSE, c->req.p.method);
	c->rlen = c->rparsed = c->rsent = 0;
}

/* Waits the backoff, then tries again (the retry was granted). */
static void schedule_retry(struct or_hconn *c)
{
	c->in_retry = true;
	c->ts = TRY_BACKOFF;
	c->t_try.cb = on_try_timer;
	ev_timer_start(c->w->loop, &c->t_try,
		       or_backoff_ms(&c->rt->policy.retries, c->tries, or_worker_rand(c->w)));
}

/*
 * The try failed before a response was committed to the app. Counts it
 * against the endpoint; retries when the policy, budget and breaker allow,
 * else answers the app with what went wrong.
 */
static void try_failed(struct or_hconn *c, enum or_failure kind, int status)
{
	struct or_route *rt = c->rt;
	uint64_t now = ev_now_ms(c->w->loop);
	struct or_retry_input in = {
		.kind = kind,
		.status = status,
		.idempotent = or_http_method_idempotent(http_method_str(c->req.p.method),
							strlen(http_method_str(c->req.p.method))),
		.request_sent = c->up_sent,
		.body_buffered = !c->streaming,
		.tries = c->tries,
	};
	enum or_outcome outcome = kind == OR_FAIL_CONNECT ? OR_OUTCOME_CONNECT_FAILURE
				  : (kind == OR_FAIL_STATUS && status < 500) ? OR_OUTCOME_SUCCESS
									  : OR_OUTCOME_5XX;

	if (kind == OR_FAIL_CONNECT)
		atomic_fetch_add(&rt->metrics->connect_failures, 1);
	if (c->ep >= 0)
		or_health_report(rt, c->ep, outcome, now);
	end_try(c, true);
	if (or_upstream_may_retry(rt, &in, now)) {
		schedule_retry(c);
		return;
	}
	switch (kind) {
	case OR_FAIL_CONNECT:
		local_reply(c, 503, "upstream_connect_failure",
			    "upstream connect error (refused, unreachable or timed out)", false);
		break;
	case OR_FAIL_PER_TRY_TIMEOUT:
		atomic_fetch_add(&rt->metrics->timeouts, 1);
		local_reply(c, 504, "upstream_per_try_timeout", "upstream request timeout", false);
		break;
	case OR_FAIL_RESET:
		local_reply(c, 503, "upstream_reset", "upstream reset before response headers",
			    false);
		break;
	case OR_FAIL_STATUS:
		break; /* a status is decided in status_retried() */
	}
}

static void start_try(struct or_hconn *c)
{
	struct or_route *rt = c->rt;
	uint64_t now = ev_now_ms(c->w->loop);
	int ep, fd, in_progress = 0;

	ep = or_upstream_pick(c->w, rt, c->tried, now, &c->probe);
	if (ep < 0) {
		if (c->in_retry) {
			or_upstream_retry_done(rt);
			c->in_retry = false;
		}
		local_reply(c, 503, "no_healthy_upstream",
			    rt->n_eps ? "no healthy upstream: every endpoint is ejected"
				      : "no healthy upstream: the service has no endpoints",
			    false);
		return;
	}
	c->tries++;
	c->tried |= 1ull << ep;
	c->ep = ep;
	or_lb_acquire(&rt->lb, ep);
	if (build_ubuf(c)) {
		hc_close(c, true);
		return;
	}
	if (c->streaming) {
		/* The body so far is framed already: it goes first, then what follows. */
		c->stream_held = c->body_len;
		c->body_len = 0;
	}
	c->t_try.cb = on_try_timer;
	fd = pool_take(c->w, c->pod, &rt->eps[ep], now);
	c->pooled_fd = fd >= 0;
	if (fd < 0) {
		if (or_cb_overflow(rt, OR_CB_MAX_PENDING_REQUESTS,
				   atomic_load(&rt->metrics->pending))) {
			end_try(c, true);
			local_reply(c, 503, "overflow",
				    "too many requests waiting for a connection (max_pending_requests)",
				    true);
			return;
		}
		atomic_fetch_add(&rt->metrics->pending, 1);
		c->ts = TRY_CONNECTING;
		fd = or_upstream_connect(c->w, c->pod, rt, ep, &in_progress);
		if (fd == -EMFILE || fd == -ENFILE || fd == -ENOBUFS || fd == -ENOMEM) {
			/* Our own shortage, not the endpoint's fault: no retry, no blame. */
			or_debug("no resources for an upstream connection", "pod=%s service=%s err=\"%s\"",
				 c->pod->name, rt->name, strerror(-fd));
			local_reply(c, 503, "local_resources",
				    "the agent is out of file descriptors or memory", true);
			return;
		}
		if (fd < 0) {
			try_failed(c, OR_FAIL_CONNECT, 0);
			return;
		}
	}
	if (ev_io_add(c->w->loop, &c->up, fd, EV_WRITE, on_up)) {
		close(fd);
		c->up.fd = -1; /* ev_io_add set it: closed already, not to be closed again */
		try_failed(c, OR_FAIL_CONNECT, 0);
		return;
	}
	if (or_log_enabled(OR_LOG_DEBUG)) {
		char ip[OR_IP_STRLEN];

		or_debug("http try", "pod=%s service=%s endpoint=%s:%u try=%u pooled=%d",
			 c->pod->name, rt->name, or_ip_str(&rt->eps[ep].ip, ip, sizeof(ip)),
			 rt->eps[ep].port, c->tries, c->pooled_fd);
	}
	if (c->ts == TRY_CONNECTING && in_progress) {
		ev_timer_start(c->w->loop, &c->t_try, rt->connect_timeout_ms);
	} else {
		/* The response, not the connect, is what counts for outlier detection. */
		if (c->ts == TRY_CONNECTING)
			atomic_fetch_sub(&rt->metrics->pending, 1);
		try_active(c);
	}
	hc_update(c);
}

static void on_try_timer(struct ev_loop *loop, struct ev_timer *t)
{
	struct or_hconn *c = container_of(t, struct or_hconn, t_try);

	switch (c->ts) {
	case TRY_BACKOFF:
		c->ts = TRY_NONE;
		start_try(c);
		break;
	case TRY_CONNECTING:
		try_failed(c, OR_FAIL_CONNECT, 0);
		break;
	case TRY_ACTIVE:
		or_debug("per-try timeout", "pod=%s service=%s try=%u", c->pod->name, c->rt->name,
			 c->tries);
		try_failed(c, OR_FAIL_PER_TRY_TIMEOUT, 0);
		break;
	default:
		break;
	}
}

static void on_req_timeout(struct ev_loop *loop, struct ev_timer *t)
{
	struct or_hconn *c = container_of(t, struct or_hconn, t_req);

	if (c->ts == TRY_COMMITTED || c->rsent) {
		/* Part of the answer is out: all we can do is cut it. */
		hc_close(c, true);
		return;
	}
	atomic_fetch_add(&c->rt->metrics->timeouts, 1);
	local_reply(c, 504, "timeout", "upstream request timeout (timeout_ms)", false);
}

static void on_idle_timeout(struct ev_loop *loop, struct ev_timer *t)
{
	struct or_hconn *c = container_of(t, struct or_hconn, t_req);

	if (c->lingering || (c->rq == RQ_HEAD && c->ts == TRY_NONE && !c->llen))
		hc_close(c, c->lingering);
}

/* Slowloris: no whole request head within limits.header_timeout_ms. */
static void on_head_timeout(struct ev_loop *loop, struct ev_timer *t)
{
	struct or_hconn *c = container_of(t, struct or_hconn, t_req);

	if (c->closed || c->rq != RQ_HEAD || c->ts != TRY_NONE)
		return;
	or_overload_count(OR_OVERLOAD_HEADER_TIMEOUT);
	if (c->llen) {
		/* Our last answer is not read either: nothing more to say to this client. */
		hc_close(c, true);
		return;
	}
	or_debug("request head timeout", "pod=%s service=%s received=%zu timeout_ms=%u",
		 c->pod->name, c->rt->name, c->in_len,
		 atomic_load_explicit(&or_proxy.header_timeout_ms, memory_order_relaxed));
	local_reply(c, 408, "header_timeout",
		    "no whole request head in time (limits.header_timeout_ms)", false);
}

/* A request head is expected: it has limits.header_timeout_ms to arrive whole. */
static void arm_head_timer(struct or_hconn *c)
{
	uint32_t ms = atomic_load_explicit(&or_proxy.header_timeout_ms, memory_order_relaxed);

	if (!ms) {
		arm_idle_timer(c);
		return;
	}
	ev_timer_stop(c->w->loop, &c->t_req);
	c->t_req.cb = on_head_timeout;
	ev_timer_start(c->w->loop, &c->t_req, ms);
}

/* Between requests: the service's idle timeout. */
static void arm_idle_timer(struct or_hconn *c)
{
	ev_timer_stop(c->w->loop, &c->t_req);
	c->t_req.cb = on_idle_timeout;
	if (c->rt->policy.idle_timeout_ms)
		ev_timer_start(c->w->loop, &c->t_req, c->rt->policy.idle_timeout_ms);
}

/* The response is over: count it, keep or drop the upstream, go on. */
static void response_done(struct or_hconn *c)
{
	struct or_route *rt = c->rt;
	/* Reusable only once the whole request went out: it may answer early. */
	bool up_ka = or_http_keep_alive(&c->resp) && c->rq == RQ_DONE && !up_pending(c);
	bool dn_ka = or_http_keep_alive(&c->req) && or_http_keep_alive(&c->resp);
	int fd = c->up.fd;

	ev_timer_stop(c->w->loop, &c->t_req);
	request_done(c, c->status);
	if (up_ka && c->rparsed == c->rlen) {
		/* Reusable: hand the socket to the pool instead of closing it. */
		ev_io_del(c->w->loop, &c->up);
		c->up.fd = -1;
		pool_put(c->w, c->pod, &rt->eps[c->ep], fd, ev_now_ms(c->w->loop));
	}
	end_try(c, false);
	c->ts = TRY_COMMITTED; /* until what is held for the app is out */
	if (!dn_ka || hc_draining(c))
		c->close_after = true;
}

/*
 * The response head at rbuf[rparsed..rparsed + h) is the last one of this
 * connection: it says "connection: close" instead of its own Connection
 * headers. rbuf has RBUF_SLACK bytes of room past RBUF_CAP for it. Returns
 * the head's new length (h unchanged if it cannot be done: the close comes
 * all the same).
 */
static size_t head_with_close(struct or_hconn *c, size_t h)
{
	char *head = c->rbuf + c->rparsed, *nh = malloc(h + OR_HTTP_CLOSE_GROWTH);
	size_t nlen = nh ? or_http_head_set_close(head, h, nh, h + OR_HTTP_CLOSE_GROWTH) : 0;

	if (nlen) {
		memmove(head + nlen, head + h, c->rlen - c->rparsed - h);
		memcpy(head, nh, nlen);
		c->rlen = c->rlen - h + nlen;
	}
	free(nh);
	return nlen ? nlen : h;
}

/*
 * A response head with a status the policy retries on, and the budget and
 * max_retries allow it: drop this answer and try again. Otherwise the
 * upstream's answer, error or not, is what the app gets.
 */
static bool status_retried(struct or_hconn *c, uint64_t now)
{
	const char *method = http_method_str(c->req.p.method);
	struct or_retry_input in = {
		.kind = OR_FAIL_STATUS,
		.status = c->status,
		.idempotent = or_http_method_idempotent(method, strlen(method)),
		.request_sent = true,
		.body_buffered = !c->streaming,
		.tries = c->tries,
	};

	if (or_retry_decide(&c->rt->policy.retries, &in) == OR_RETRY_NOT_FAILURE)
		return false;
	if (!or_upstream_may_retry(c->rt, &in, now))
		return false;
	end_try(c, true);
	schedule_retry(c);
	return true;
}

/*
 * The answer the app is getting was cut short upstream (EOF or reset mid-
 * body, or a framing error). What it has not got yet of the bytes already
 * framed goes out first; then a reset tells it the answer is incomplete.
 */
static void cut_answer(struct or_hconn *c)
{
	if (c->ts != TRY_COMMITTED || c->rsent >= c->rparsed) {
		hc_close(c, true);
		return;
	}
	end_try(c, true);
	c->ts = TRY_COMMITTED; /* until what is held for the app is out */
	c->close_after = true;
	c->reset_after = true; /* hc_update() resets once it is out */
}

/* Response bytes in rbuf[rparsed..rlen): frame them, decide, or pass them on. */
static void take_response(struct or_hconn *c, bool eof)
{
	struct or_route *rt = c->rt;
	size_t h;
	ssize_t n;

	while (c->ts == TRY_ACTIVE || c->ts == TRY_COMMITTED) {
		if (!c->resp.head_done) {
			h = or_http_head_end(c->rbuf + c->rparsed, c->rlen - c->rparsed);
			if (!h) {
				if (eof) {
					try_failed(c, OR_FAIL_RESET, 0);
				} else if (c->rlen - c->rparsed >= OR_HTTP_MAX_HEAD) {
					or_health_report(rt, c->ep, OR_OUTCOME_5XX, ev_now_ms(c->w->loop));
					local_reply(c, 502, "bad_response", "response head over 60 KiB", false);
				}
				return;
			}
			if (or_http_msg_head(&c->resp, c->rbuf + c->rparsed, h)) {
				or_health_report(rt, c->ep, OR_OUTCOME_5XX, ev_now_ms(c->w->loop));
				local_reply(c, 502, "bad_response", c->resp.why, false);
				return;
			}
			c->status = c->resp.p.status_code;
			if (c->status >= 100 && c->status < 200) {
				/* Interim: pass it on (but our own 100 went out already). */
				if (c->status == 100 && c->sent_continue) {
					memmove(c->rbuf + c->rparsed, c->rbuf + c->rparsed + h,
						c->rlen - c->rparsed - h);
					c->rlen -= h;
				} else {
					c->rparsed += h;
				}
				or_http_msg_init(&c->resp, HTTP_RESPONSE, c->req.p.method);
				continue;
			}
			if (c->status == 101) {
				local_reply(c, 502, "upgrade", "protocol upgrades are not proxied yet", false);
				return;
			}
			if (c->ts == TRY_ACTIVE) {
				uint64_t now = ev_now_ms(c->w->loop);

				or_health_report(rt, c->ep,
						 c->status >= 500 ? OR_OUTCOME_5XX : OR_OUTCOME_SUCCESS,
						 now);
				if (status_retried(c, now))
					return;
				/* Committed: this answer goes to the app, as it comes. */
				ev_timer_stop(c->w->loop, &c->t_try);
				c->ts = TRY_COMMITTED;
				if (hc_draining(c)) {
					h = head_with_close(c, h);
					c->close_after = true;
				}
			}
			c->rparsed += h;
			if (c->resp.complete) {
				response_done(c);
				return;
			}
		}
		if (c->rparsed == c->rlen && !eof)
			return;
		n = or_http_msg_body(&c->resp, c->rbuf + c->rparsed, c->rlen - c->rparsed);
		if (n < 0) {
			/* Committed already: cut the app's connection. */
			or_debug("bad response body", "service=%s why=\"%s\"", rt->name,
				 c->resp.why);
			cut_answer(c);
			return;
		}
		c->rparsed += n;
		if (c->resp.complete)
			response_done(c);
		return;
	}
}

static void read_response(struct or_hconn *c)
{
	ssize_t n;

	if (!c->rbuf) {
		c->rbuf = malloc(RBUF_CAP + RBUF_SLACK);
		if (!c->rbuf) {
			hc_close(c, true);
			return;
		}
		or_overload_buffers(RBUF_CAP);
	}
	if (c->rsent && c->rsent == c->rparsed) {
		memmove(c->rbuf, c->rbuf + c->rsent, c->rlen - c->rsent);
		c->rlen -= c->rsent;
		c->rparsed -= c->rsent;
		c->rsent = 0;
	}
	if (c->rlen >= RBUF_CAP)
		return;
	n = recv(c->up.fd, c->rbuf + c->rlen, RBUF_CAP - c->rlen, 0);
	if (n > 0) {
		c->rlen += n;
		atomic_fetch_add(&c->rt->metrics->bytes_sent, n);
		take_response(c, false);
		return;
	}
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	/* EOF or error from the upstream. */
	if (c->ts == TRY_ACTIVE && !c->resp.head_done) {
		try_failed(c, OR_FAIL_RESET, 0);
		return;
	}
	if (n == 0) {
		take_response(c, true); /* may end a read-until-close body */
		if (c->ts == TRY_COMMITTED && !c->resp.complete && !c->closed && !c->reset_after)
			cut_answer(c);
		return;
	}
	cut_answer(c);
}

static int write_upstream(struct or_hconn *c)
{
	ssize_t n;

	while (c->ubuf_off < c->ubuf_len) {
		n = send(c->up.fd, c->ubuf + c->ubuf_off, c->ubuf_len - c->ubuf_off, MSG_NOSIGNAL);
		if (n > 0) {
			c->ubuf_off += n;
			c->up_sent = true;
			continue;
		}
		if (n == -1 && (errno == EAGAIN || errno == EINTR))
			return 0;
		return -errno;
	}
	/* The held body, from `in`, where it stays for another try. */
	while (!c->streaming && c->body_sent < c->body_len) {
		n = send(c->up.fd, c->in + c->head_len + c->body_sent, c->body_len - c->body_sent,
			 MSG_NOSIGNAL);
		if (n > 0) {
			c->body_sent += n;
			c->up_sent = true;
			continue;
		}
		if (n == -1 && (errno == EAGAIN || errno == EINTR))
			return 0;
		return -errno;
	}
	if (!c->streaming)
		return 0;
	/* Streaming: body bytes past what ubuf held go straight from `in`. */
	for (;;) {
		if (!c->stream_held && !c->req.complete && c->in_len > c->head_len) {
			ssize_t take = or_http_msg_body(&c->req, c->in + c->head_len,
							c->in_len - c->head_len);

			if (take < 0)
				return -EPROTO;
			c->stream_held = take;
			if (c->req.complete)
				c->rq = RQ_DONE;
		}
		if (!c->stream_held)
			return 0;
		n = send(c->up.fd, c->in + c->head_len, c->stream_held, MSG_NOSIGNAL);
		if (n == -1 && (errno == EAGAIN || errno == EINTR))
			return 0;
		if (n < 0)
			return -errno;
		c->up_sent = true;
		memmove(c->in + c->head_len, c->in + c->head_len + n, c->in_len - c->head_len - n);
		c->in_len -= n;
		c->stream_held -= n;
	}
}

/* Streamed body bytes are waiting to go upstream. */
static bool stream_pending(const struct or_hconn *c)
{
	return c->streaming && (c->stream_held || (!c->req.complete && c->in_len > c->head_len));
}

/* Request bytes of this try not sent upstream yet. */
static bool up_pending(const struct or_hconn *c)
{
	return c->ubuf_off < c->ubuf_len || (!c->streaming && c->body_sent < c->body_len) ||
	       stream_pending(c);
}

static void on_up(struct ev_loop *loop, struct ev_io *io, unsigned int revents)
{
	struct or_hconn *c = container_of(io, struct or_hconn, up);
	int err;

	if (c->closed)
		return;
	if (c->ts == TRY_CONNECTING) {
		err = or_sock_error(c->up.fd);
		if (err) {
			try_failed(c, OR_FAIL_CONNECT, 0);
			return;
		}
		atomic_fetch_sub(&c->rt->metrics->pending, 1);
		try_active(c);
	}
	if (revents & EV_WRITE && (c->ts == TRY_ACTIVE || c->ts == TRY_COMMITTED)) {
		err = write_upstream(c);
		if (err) {
			if (c->ts == TRY_ACTIVE && !c->resp.head_done)
				try_failed(c, OR_FAIL_RESET, 0);
			else
				hc_close(c, true);
			return;
		}
	}
	if ((revents & EV_READ) && (c->ts == TRY_ACTIVE || c->ts == TRY_COMMITTED))
		read_response(c);
	if (!c->closed)
		hc_update(c);
}

/* ---- the app's side ---- */

static int write_app(struct or_hconn *c)
{
	ssize_t n;

	/* Our own bytes (100 Continue, local replies) go before response bytes. */
	while (c->loff < c->llen) {
		n = send(c->dn.fd, c->lbuf + c->loff, c->llen - c->loff, MSG_NOSIGNAL);
		if (n > 0) {
			c->loff += n;
			continue;
		}
		if (n == -1 && (errno == EAGAIN || errno == EINTR))
			return 0;
		return -errno;
	}
	c->loff = c->llen = 0;
	if (c->ts == TRY_COMMITTED || c->status) {
		while (c->rsent < c->rparsed) {
			n = send(c->dn.fd, c->rbuf + c->rsent, c->rparsed - c->rsent, MSG_NOSIGNAL);
			if (n > 0) {
				c->rsent += n;
				continue;
			}
			if (n == -1 && (errno == EAGAIN || errno == EINTR))
				return 0;
			return -errno;
		}
	}
	return 0;
}

/* The previous exchange is out: drop its bytes and look at what follows. */
static void next_request(struct or_hconn *c)
{
	size_t used = c->head_len + c->body_len;

	if (used > c->in_len)
		used = c->in_len;
	if (used) {
		memmove(c->in, c->in + used, c->in_len - used);
		c->in_len -= used;
	}
	c->head_len = c->body_len = 0;
	c->rq = RQ_HEAD;
	c->ts = TRY_NONE;
	c->status = 0;
	c->rlen = c->rparsed = c->rsent = 0;
	if (c->in_len) {
		arm_head_timer(c); /* a pipelined request: its head is on the clock */
		return;
	}
	if (hc_draining(c)) {
		hc_close(c, false); /* idle, and the agent is draining */
		return;
	}
	arm_idle_timer(c);
}

static void on_dn(struct ev_loop *loop, struct ev_io *io, unsigned int revents)
{
	struct or_hconn *c = container_of(io, struct or_hconn, dn);

	if (c->closed)
		return;
	if (c->lingering) {
		char sink[4096];
		ssize_t n = recv(c->dn.fd, sink, sizeof(sink), 0);

		if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR))
			hc_close(c, false);
		return;
	}
	if (revents & EV_WRITE) {
		if (write_app(c)) {
			hc_close(c, true);
			return;
		}
	}
	if (revents & EV_READ) {
		read_request(c);
		if (c->closed)
			return;
	}
	hc_update(c);
}

/* After any event: finish exchanges, start the next, and set what to wait for. */
static void hc_update(struct or_hconn *c)
{
	unsigned int dn = 0, up = 0;
	bool out_pending;

	for (int guard = 0; guard < 8 && !c->closed; guard++) {
		bool answered;

		out_pending = c->loff < c->llen || c->rsent < c->rparsed;
		if (c->reset_after && !out_pending) {
			hc_close(c, true); /* the app has every byte there was: now the reset */
			return;
		}
		/* An exchange is over once the answer is out, all of it. */
		answered = !out_pending && c->status &&
			   (c->ts == TRY_NONE ||
			    (c->ts == TRY_COMMITTED && (c->resp.complete || c->resp.error)));
		if (answered && c->ts == TRY_COMMITTED && !c->close_after) {
			next_request(c);
			if (c->closed)
				return;
			answered = false;
		}
		if (answered && c->close_after) {
			/* Final reply out: half-close and drain, so the app reads it all. */
			if (!c->lingering) {
				shutdown(c->dn.fd, SHUT_WR);
				c->lingering = true;
				ev_timer_stop(c->w->loop, &c->t_req);
				c->t_req.cb = on_idle_timeout;
				ev_timer_start(c->w->loop, &c->t_req, LINGER_MS);
			}
			ev_io_set(c->w->loop, &c->dn, EV_READ);
			return;
		}
		size_t before = c->in_len;
		enum rq_state rq = c->rq;
		enum try_state ts = c->ts;

		advance_request(c);
		if (c->closed)
			return;
		if (c->rq == rq && c->ts == ts && c->in_len == before)
			break;
	}
	if (c->closed)
		return;
	if (hc_idle(c) && hc_draining(c)) {
		hc_close(c, false); /* between requests while the agent drains */
		return;
	}
	if (c->ts == TRY_ACTIVE && c->up.fd != -1 && up_pending(c))
		write_upstream(c);

	out_pending = c->loff < c->llen || c->rsent < c->rparsed;
	if (out_pending)
		dn |= EV_WRITE;
	/* Read the app while a request is being received, or for the next one. */
	if (in_room(c)) {
		if (c->dn_eof)
			; /* nothing more will come */
		else if (c->rq != RQ_DONE && !stream_pending(c))
			dn |= EV_READ;
		else if (c->rq == RQ_DONE && !c->close_after)
			dn |= EV_READ; /* pipelined requests wait in `in` */
	}
	if (c->up.fd != -1) {
		if (c->ts == TRY_CONNECTING ||
		    (c->ts == TRY_ACTIVE && up_pending(c)))
			up |= EV_WRITE;
		if ((c->ts == TRY_ACTIVE || c->ts == TRY_COMMITTED) && c->rlen < RBUF_CAP)
			up |= EV_READ;
		if (ev_io_set(c->w->loop, &c->up, up)) {
			hc_close(c, true);
			return;
		}
	}
	if (ev_io_set(c->w->loop, &c->dn, dn))
		hc_close(c, true);
}

/* A connection for fd, on w's list and watched; NULL (fd closed) on failure. */
static struct or_hconn *hc_new(struct or_worker *w, struct or_pod_rt *pod,
			       struct or_routes *routes, struct or_route *rt, int fd)
{
	struct or_hconn *c = calloc(1, sizeof(*c));

	if (!c) {
		or_routes_put(routes);
		atomic_fetch_sub(&or_proxy.active, 1);
		or_sock_close_rst(fd);
		return NULL;
	}
	c->w = w;
	c->routes = routes;
	c->rt = rt;
	or_pod_rt_get(pod);
	c->pod = pod;
	c->ep = -1;
	c->up.fd = -1;
	ev_timer_init(&c->t_req, on_idle_timeout);
	ev_timer_init(&c->t_try, on_try_timer);
	c->next = w->hconns;
	if (w->hconns)
		w->hconns->prev = c;
	w->hconns = c;
	atomic_fetch_add(&rt->metrics->active_connections, 1);
	atomic_fetch_add(&rt->metrics->tcp_opened, 1);
	if (ev_io_add(w->loop, &c->dn, fd, EV_READ, on_dn)) {
		c->dn.fd = fd;
		hc_close(c, true);
		return NULL;
	}
	return c;
}

/* Answers the first request with a 503 before reading it, then closes. */
static void refuse_first(struct or_hconn *c, const char *reason, const char *why)
{
	c->rq = RQ_DONE;
	c->close_after = true;
	c->active = true;
	atomic_fetch_add(&c->rt->metrics->active_requests, 1);
	local_reply(c, 503, reason, why, true);
}

void or_http_accept(struct or_worker *w, struct or_pod_rt *pod, struct or_routes *routes,
		    struct or_route *rt, int fd)
{
	struct or_hconn *c = hc_new(w, pod, routes, rt, fd);

	if (!c)
		return;
	if (or_cb_overflow(rt, OR_CB_MAX_CONNECTIONS,
			   atomic_load(&rt->metrics->active_connections) - 1)) {
		refuse_first(c, "overflow", "too many connections (max_connections)");
		return;
	}
	arm_head_timer(c); /* the first request's head: from now */
}

void or_http_shed(struct or_worker *w, struct or_pod_rt *pod, struct or_routes *routes,
		  struct or_route *rt, int fd, const char *reason, const char *why)
{
	struct or_hconn *c = hc_new(w, pod, routes, rt, fd);

	if (c)
		refuse_first(c, reason, why);
}

void or_http_drain(struct or_worker *w)
{
	struct or_hconn *c, *next;

	for (c = w->hconns; c; c = next) {
		next = c->next; /* hc_close unlinks c only */
		if (c->closed || c->lingering)
			continue;
		c->draining = true;
		if (hc_idle(c)) {
			/*
			 * Not closed at once: its client may be sending a request
			 * right now, which would meet a close. One that comes is
			 * answered with "connection: close"; without one, closed
			 * after DRAIN_IDLE_MS.
			 */
			c->t_req.cb = on_idle_timeout;
			ev_timer_start(w->loop, &c->t_req, DRAIN_IDLE_MS);
			continue;
		}
		/*
		 * An answer going out already went without "connection: close":
		 * close once it is all out. One not committed yet gets the
		 * header (take_response, local_reply).
		 */
		if (c->ts == TRY_COMMITTED)
			c->close_after = true;
	}
}

void or_http_close_all(struct or_worker *w)
{
	while (w->hconns)
		hc_close(w->hconns, false);
	while (w->pool) {
		struct or_pooled *p = w->pool;

		w->pool = p->next;
		pooled_free(p);
	}
	w->pool_len = 0;
}
