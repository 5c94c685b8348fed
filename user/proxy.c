// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "health.h"
#include "http_proxy.h"
#include "tunnel_in.h"
#include "tunnel_out.h"
#include "log.h"
#include "metrics.h"
#include "overload.h"
#include "proxy.h"
#include "routes.h"
#include "sock.h"
#include "upstream.h"

struct or_proxy_ctx or_proxy;

/* One direction of a connection: bytes read from one side, not yet written. */
struct half {
	char *buf;
	uint32_t off, len;
	bool rd_eof;  /* the source sent FIN */
	bool wr_shut; /* FIN passed on to the destination */
};

enum conn_state {
	CONN_CONNECTING, /* a try is connecting: timer = connect timeout */
	CONN_BACKOFF,    /* waiting before the next try: timer = backoff */
	CONN_OPEN,       /* streaming: timer = idle timeout */
};

struct or_conn {
	struct or_worker *w;
	struct or_conn *prev, *next; /* the worker's list */
	struct ev_io dn;             /* the app's side (accepted in the pod) */
	struct ev_io up;             /* the endpoint's side; fd -1 between tries */
	struct ev_timer timer;
	struct ev_deferred defer;
	struct or_pod_rt *pod;
	struct or_routes *routes;
	struct or_route *route;
	enum conn_state state;
	int ep;          /* endpoint of the current try, -1 if none */
	bool probe;      /* the current try decides a half-open endpoint */
	bool in_retry;   /* the current try is a retry (counts in active_retries) */
	bool closed;
	uint32_t tries;
	uint64_t tried;  /* bit i: endpoint i was tried */
	uint64_t last_activity_ms;
	struct half d2u, u2d;
	char mem[2 * OR_CONN_BUF];
};

static void conn_free(struct ev_deferred *d)
{
	struct or_conn *c = container_of(d, struct or_conn, defer);

	or_overload_buffers(-(int64_t)sizeof(c->mem));
	or_routes_put(c->routes);
	or_pod_rt_put(c->pod);
	free(c);
}

static void close_up(struct or_conn *c, bool rst)
{
	if (c->up.fd != -1) {
		ev_io_del(c->w->loop, &c->up);
		if (rst)
			or_sock_close_rst(c->up.fd);
		else
			close(c->up.fd);
		c->up.fd = -1;
	}
	/* Also when the try never got a socket: the pick is given back all the same. */
	if (c->ep >= 0)
		or_lb_release(&c->route->lb, c->ep);
	c->ep = -1;
}

/* Ends the try that is in flight, if it is a retry (max_retries gauge). */
static void try_done(struct or_conn *c)
{
	if (c->in_retry) {
		or_upstream_retry_done(c->route);
		c->in_retry = false;
	}
}

/* Ends the connection; with rst both sides see a reset instead of a FIN. */
static void conn_close(struct or_conn *c, bool rst)
{
	struct or_worker *w = c->w;
	struct or_svc_metrics *m = c->route->metrics;

	if (c->closed)
		return;
	c->closed = true;
	ev_timer_stop(w->loop, &c->timer);
	ev_io_del(w->loop, &c->dn);
	if (rst)
		or_sock_close_rst(c->dn.fd);
	else
		close(c->dn.fd);
	if (c->state == CONN_CONNECTING)
		atomic_fetch_sub(&m->pending, 1);
	close_up(c, rst);
	try_done(c);
	if (c->prev)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	atomic_fetch_sub(&m->active_connections, 1);
	atomic_fetch_add(&m->tcp_closed, 1);
	atomic_fetch_sub(&or_proxy.active, 1);
	ev_defer(w->loop, &c->defer, conn_free);
}

static bool has_room(const struct half *h)
{
	return h->off + h->len < OR_CONN_BUF;
}

/* Reads what fits from fd into h. Returns bytes read, or -errno (fatal). */
static ssize_t half_read(struct half *h, int fd)
{
	ssize_t n;

	if (h->rd_eof || !has_room(h))
		return 0;
	n = recv(fd, h->buf + h->off + h->len, OR_CONN_BUF - h->off - h->len, 0);
	if (n > 0) {
		h->len += n;
		return n;
	}
	if (n == 0)
		h->rd_eof = true;
	else if (errno != EAGAIN && errno != EINTR)
		return -errno;
	return 0;
}

/* Writes what h holds to fd, then passes a FIN on once all is out. */
static int half_write(struct half *h, int fd)
{
	ssize_t n;

	if (h->len) {
		n = send(fd, h->buf + h->off, h->len, MSG_NOSIGNAL);
		if (n > 0) {
			h->off += n;
			h->len -= n;
			if (!h->len)
				h->off = 0;
		} else if (n == -1 && errno != EAGAIN && errno != EINTR) {
			return -errno;
		}
	}
	if (h->rd_eof && !h->len && !h->wr_shut) {
		if (shutdown(fd, SHUT_WR) == -1 && errno != ENOTCONN)
			return -errno;
		h->wr_shut = true;
	}
	return 0;
}

static void conn_update(struct or_conn *c)
{
	unsigned int dn = 0, up = 0;

	if (c->d2u.wr_shut && c->u2d.wr_shut) {
		or_proxy.stats.completed++;
		conn_close(c, false);
		return;
	}
	if (!c->d2u.rd_eof && has_room(&c->d2u))
		dn |= EV_READ;
	if (c->u2d.len)
		dn |= EV_WRITE;
	if (!c->u2d.rd_eof && has_room(&c->u2d))
		up |= EV_READ;
	if (c->d2u.len)
		up |= EV_WRITE;
	if (ev_io_set(c->w->loop, &c->dn, dn) || ev_io_set(c->w->loop, &c->up, up))
		conn_close(c, true);
}

/* Data moves from `from` through h_in, and to `from` out of h_out. */
static void on_side(struct or_conn *c, int from, int to, struct half *h_in, struct half *h_out,
		    unsigned int revents, _Atomic uint64_t *bytes_in)
{
	ssize_t n = 0;
	int err = 0;

	c->last_activity_ms = ev_now_ms(c->w->loop);
	if (revents & EV_READ) {
		n = half_read(h_in, from);
		if (n < 0)
			err = n;
		else
			err = half_write(h_in, to);
		if (n > 0)
			atomic_fetch_add(bytes_in, n);
	}
	if (!err && (revents & EV_WRITE))
		err = half_write(h_out, from);
	if (err) {
		or_debug("connection reset", "pod=%s service=%s err=\"%s\"", c->pod->name,
			 c->route->name, strerror(-err));
		conn_close(c, true);
		return;
	}
	conn_update(c);
}

static void on_dn(struct ev_loop *loop, struct ev_io *io, unsigned int revents)
{
	struct or_conn *c = container_of(io, struct or_conn, dn);

	if (c->closed)
		return;
	if (c->state != CONN_OPEN) {
		/* Nothing is read before a try succeeds: only a hang-up shows here. */
		if (revents & EV_ERROR)
			conn_close(c, true);
		return;
	}
	on_side(c, c->dn.fd, c->up.fd, &c->d2u, &c->u2d, revents,
		&c->route->metrics->bytes_received);
}

static void on_up(struct ev_loop *loop, struct ev_io *io, unsigned int revents);
static void on_timer(struct ev_loop *loop, struct ev_timer *t);
static void start_try(struct or_conn *c);

static void arm_idle(struct or_conn *c)
{
	uint32_t idle = c->route->policy.idle_timeout_ms;

	if (idle)
		ev_timer_start(c->w->loop, &c->timer, idle);
}

static void connected(struct or_conn *c)
{
	struct or_route *rt = c->route;

	atomic_fetch_sub(&rt->metrics->pending, 1);
	c->state = CONN_OPEN;
	ev_timer_stop(c->w->loop, &c->timer);
	or_health_report(rt, c->ep, OR_OUTCOME_SUCCESS, ev_now_ms(c->w->loop));
	try_done(c);
	c->last_activity_ms = ev_now_ms(c->w->loop);
	arm_idle(c);
	conn_update(c);
}

/*
 * The try on c->ep failed before any byte was sent: count it against the
 * endpoint, then retry on another one or give up with a reset.
 */
static void try_failed(struct or_conn *c, int err)
{
	struct or_route *rt = c->route;
	uint64_t now = ev_now_ms(c->w->loop);
	struct or_retry_input in = {
		.kind = OR_FAIL_CONNECT,
		.idempotent = true,
		.body_buffered = true,
		.tries = c->tries,
	};

	if (c->state == CONN_CONNECTING)
		atomic_fetch_sub(&rt->metrics->pending, 1);
	c->state = CONN_BACKOFF; /* no longer pending, whatever happens next */
	atomic_fetch_add(&rt->metrics->connect_failures, 1);
	or_proxy.stats.connect_failed++;
	if (c->ep >= 0) {
		or_health_report(rt, c->ep, OR_OUTCOME_CONNECT_FAILURE, now);
		if (or_log_enabled(OR_LOG_DEBUG)) {
			char ip[OR_IP_STRLEN];

			or_debug("upstream connect failed", "pod=%s service=%s endpoint=%s:%u try=%u err=\"%s\"",
				 c->pod->name, rt->name, or_ip_str(&rt->eps[c->ep].ip, ip, sizeof(ip)),
				 rt->eps[c->ep].port, c->tries, strerror(-err));
		}
	}
	close_up(c, true);
	try_done(c);
	if (!or_upstream_may_retry(rt, &in, now)) {
		conn_close(c, true);
		return;
	}
	c->in_retry = true;
	ev_timer_start(c->w->loop, &c->timer,
		       or_backoff_ms(&rt->policy.retries, c->tries, or_worker_rand(c->w)));
}

static void on_up(struct ev_loop *loop, struct ev_io *io, unsigned int revents)
{
	struct or_conn *c = container_of(io, struct or_conn, up);
	int err;

	if (c->closed)
		return;
	if (c->state == CONN_CONNECTING) {
		err = or_sock_error(c->up.fd);
		if (err)
			try_failed(c, err);
		else
			connected(c);
		return;
	}
	on_side(c, c->up.fd, c->dn.fd, &c->u2d, &c->d2u, revents,
		&c->route->metrics->bytes_sent);
}

static void on_timer(struct ev_loop *loop, struct ev_timer *t)
{
	struct or_conn *c = container_of(t, struct or_conn, timer);
	uint64_t now = ev_now_ms(loop);
	uint32_t idle;

	switch (c->state) {
	case CONN_CONNECTING:
		or_proxy.stats.connect_timeout++;
		try_failed(c, -ETIMEDOUT);
		break;
	case CONN_BACKOFF:
		start_try(c);
		break;
	case CONN_OPEN:
		idle = c->route->policy.idle_timeout_ms;
		if (now - c->last_activity_ms >= idle) {
			or_debug("idle timeout", "pod=%s service=%s idle_ms=%u", c->pod->name,
				 c->route->name, idle);
			conn_close(c, false);
		} else {
			ev_timer_start(loop, t, idle - (now - c->last_activity_ms));
		}
		break;
	}
}

/* Starts a try on a healthy endpoint; a failure to start is a failed try. */
static void start_try(struct or_conn *c)
{
	struct or_route *rt = c->route;
	uint64_t now = ev_now_ms(c->w->loop);
	int in_progress, fd, ep;

	ep = or_upstream_pick(c->w, rt, c->tried, now, &c->probe);
	if (ep < 0) {
		or_proxy.stats.no_endpoint++;
		or_debug("no healthy endpoint", "pod=%s service=%s endpoints=%zu", c->pod->name,
			 rt->name, rt->n_eps);
		try_done(c);
		conn_close(c, true);
		return;
	}
	if (or_cb_overflow(rt, OR_CB_MAX_PENDING_REQUESTS, atomic_load(&rt->metrics->pending))) {
		try_done(c);
		conn_close(c, true);
		return;
	}
	c->tries++;
	c->tried |= 1ull << ep;
	c->ep = ep;
	or_lb_acquire(&rt->lb, ep);
	atomic_fetch_add(&rt->metrics->pending, 1);
	c->state = CONN_CONNECTING;
	fd = or_upstream_connect(c->w, c->pod, rt, ep, &in_progress);
	if (fd == -EMFILE || fd == -ENFILE || fd == -ENOBUFS || fd == -ENOMEM) {
		/* Our own shortage, not the endpoint's fault: no retry, no blame. */
		or_debug("no resources for an upstream connection", "pod=%s service=%s err=\"%s\"",
			 c->pod->name, rt->name, strerror(-fd));
		try_done(c);
		conn_close(c, true);
		return;
	}
	if (fd < 0) {
		try_failed(c, fd);
		return;
	}
	if (ev_io_add(c->w->loop, &c->up, fd, in_progress ? EV_WRITE : 0, on_up)) {
		close(fd);
		c->up.fd = -1; /* ev_io_add set it: closed already, not to be closed again */
		try_failed(c, -ENOMEM);
		return;
	}
	if (or_log_enabled(OR_LOG_DEBUG)) {
		char b[OR_IP_STRLEN];

		or_debug("proxying", "pod=%s service=%s endpoint=%s:%u try=%u worker=%u",
			 c->pod->name, rt->name, or_ip_str(&rt->eps[ep].ip, b, sizeof(b)),
			 rt->eps[ep].port, c->tries, c->w->id);
	}
	if (in_progress)
		ev_timer_start(c->w->loop, &c->timer, rt->connect_timeout_ms);
	else
		connected(c);
}

/*
 * From linux/netfilter_ipv4.h and linux/netfilter_ipv6/ip6_tables.h, which
 * clash with glibc's netinet/in.h.
 */
#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80
#endif
#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80
#endif

/* Where iptables REDIRECT found the connection going (sidecar mode). */
static int original_dst(int fd, int family, struct or_ip *ip, uint16_t *port)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int ret;

	if (family == AF_INET6)
		ret = getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &ss, &len);
	else
		ret = getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &ss, &len);
	if (ret == -1)
		return -errno;
	return or_ip_from_sockaddr(&ss, ip, port);
}

static int lookup_origdst(struct or_listener *l, int fd, struct or_dst *dst)
{
	struct or_origdst_key key = {
		.netns_cookie = l->pod->netns_cookie,
		.family = l->family == AF_INET ? OR_AF_INET : OR_AF_INET6,
	};
	int port = or_sock_peer_port(fd);

	if (or_proxy.sidecar) {
		struct or_ip ip;
		uint16_t p;
		int err = original_dst(fd, l->family, &ip, &p);

		if (err)
			return err;
		memset(dst, 0, sizeof(*dst));
		dst->family = ip.family == AF_INET ? OR_AF_INET : OR_AF_INET6;
		or_ip_to_abi(&ip, dst->addr);
		dst->port = p;
		return 0;
	}
	if (port < 0)
		return port;
	key.port = port;
	return or_bpf_origdst_take(or_proxy.bpf, &key, dst);
}

/* An L4 connection for rt; owns fd and the routes reference. */
static void l4_start(struct or_worker *w, struct or_listener *l, struct or_routes *routes,
		     struct or_route *rt, int fd)
{
	struct or_conn *c = malloc(sizeof(*c));

	if (!c) {
		or_routes_put(routes);
		atomic_fetch_sub(&or_proxy.active, 1);
		or_sock_close_rst(fd);
		return;
	}
	memset(c, 0, offsetof(struct or_conn, mem));
	or_overload_buffers((int64_t)sizeof(c->mem));
	c->w = w;
	c->routes = routes;
	c->route = rt;
	c->ep = -1;
	or_pod_rt_get(l->pod);
	c->pod = l->pod;
	c->d2u.buf = c->mem;
	c->u2d.buf = c->mem + OR_CONN_BUF;
	c->up.fd = -1;
	ev_timer_init(&c->timer, on_timer);
	c->next = w->conns;
	if (w->conns)
		w->conns->prev = c;
	w->conns = c;
	atomic_fetch_add(&rt->metrics->active_connections, 1);
	atomic_fetch_add(&rt->metrics->tcp_opened, 1);
	or_budget_request(&rt->budget, ev_now_ms(w->loop));
	if (ev_io_add(w->loop, &c->dn, fd, 0, on_dn)) {
		c->dn.fd = fd;
		conn_close(c, true);
		return;
	}
	start_try(c);
}

/* Why a new connection is turned away before it is served, or OR_OVERLOAD_MAX. */
static enum or_overload_reason shed_reason(struct or_worker *w)
{
	if (atomic_fetch_add(&or_proxy.active, 1) >= atomic_load(&or_proxy.max_connections)) {
		or_proxy.stats.refused_limit++;
		return OR_OVERLOAD_MAX_CONNECTIONS;
	}
	if (or_overload_shed(ev_now_ms(w->loop)))
		return OR_OVERLOAD_MEMORY;
	return OR_OVERLOAD_MAX;
}

void or_proxy_accept(struct or_worker *w, struct or_listener *l, int fd)
{
	struct or_routes *routes = NULL;
	struct or_route *route;
	struct or_dst dst;
	struct or_ip vip;
	enum or_overload_reason shed;
	int err;

	or_proxy.stats.accepted++;
	/*
	 * Decided first, acted on once the route is known: an HTTP app is
	 * told why (503), a TCP one is reset.
	 */
	shed = shed_reason(w);
	err = lookup_origdst(l, fd, &dst);
	if (err) {
		or_proxy.stats.no_origdst++;
		or_debug("no original destination", "pod=%s err=\"%s\"", l->pod->name,
			 strerror(-err));
		goto refuse;
	}
	or_ip_from_abi(dst.family == OR_AF_INET ? AF_INET : AF_INET6, dst.addr, &vip);
	routes = or_routes_get();
	route = routes ? or_routes_find(routes, &vip, dst.port) : NULL;
	if (!route && or_proxy.sidecar) {
		/* No service there: on to where the app was going (Istio's passthrough). */
		or_routes_put(routes);
		routes = NULL;
		if (or_routes_single("passthrough", &vip, dst.port, &routes))
			goto refuse;
		route = &routes->v[0];
	}
	if (!route) {
		or_proxy.stats.no_route++;
		goto refuse;
	}
	if (shed != OR_OVERLOAD_MAX) {
		bool mem = shed == OR_OVERLOAD_MEMORY;

		or_overload_count(shed);
		or_debug("connection shed", "pod=%s service=%s reason=%s", l->pod->name,
			 route->name, mem ? "memory" : "max_connections");
		if (route->protocol != OR_PROTOCOL_HTTP)
			goto refuse;
		or_http_shed(w, l->pod, routes, route, fd, mem ? "memory" : "max_connections",
			     mem ? "the agent is near its memory limit"
				 : "the agent is at max_connections");
		return;
	}
	if (route->protocol == OR_PROTOCOL_HTTP) {
		or_http_accept(w, l->pod, routes, route, fd);
		return;
	}
	if (or_cb_overflow(route, OR_CB_MAX_CONNECTIONS,
			   atomic_load(&route->metrics->active_connections))) {
		or_debug("circuit breaker overflow", "pod=%s service=%s limit=max_connections",
			 l->pod->name, route->name);
		goto refuse;
	}
	l4_start(w, l, routes, route, fd);
	return;

refuse:
	or_routes_put(routes);
	atomic_fetch_sub(&or_proxy.active, 1);
	or_sock_close_rst(fd);
}

/* The strictest mtls mode among the services whose endpoint ip:port is. */
static enum or_mtls_mode inbound_mode(const struct or_routes *r, const struct or_ip *ip,
				      uint16_t port)
{
	enum or_mtls_mode m = OR_MTLS_DISABLED;

	for (size_t i = 0; r && i < r->n; i++)
		for (size_t j = 0; j < r->v[i].n_eps; j++)
			if (r->v[i].eps[j].port == port && or_ip_eq(&r->v[i].eps[j].ip, ip) &&
			    r->v[i].mtls > m)
				m = r->v[i].mtls;
	return m;
}

void or_proxy_accept_inbound(struct or_worker *w, struct or_listener *l, int fd)
{
	struct or_routes *routes, *one = NULL;
	struct or_ip dst, app;
	enum or_overload_reason shed;
	enum or_mtls_mode mode;
	uint16_t port;
	int err;

	or_proxy.stats.accepted++;
	shed = shed_reason(w);
	if (shed != OR_OVERLOAD_MAX) {
		or_overload_count(shed);
		goto refuse;
	}
	err = original_dst(fd, l->family, &dst, &port);
	if (err) {
		or_proxy.stats.no_origdst++;
		goto refuse;
	}
	routes = or_routes_get();
	mode = inbound_mode(routes, &dst, port);
	or_routes_put(routes);
	if (mode == OR_MTLS_STRICT) {
		or_debug("inbound plaintext refused", "pod=%s port=%u mtls=strict", l->pod->name,
			 port);
		goto refuse;
	}
	/* The app listens on the wildcard or loopback, as for the tunnel (tunnel_in.c). */
	or_ip_parse(dst.family == AF_INET6 ? "::1" : "127.0.0.1", &app);
	if (or_routes_single("inbound", &app, port, &one))
		goto refuse;
	l4_start(w, l, one, &one->v[0], fd);
	return;

refuse:
	atomic_fetch_sub(&or_proxy.active, 1);
	or_sock_close_rst(fd);
}

void or_proxy_close_all(struct or_worker *w)
{
	while (w->conns)
		conn_close(w->conns, false);
	or_http_close_all(w);
	or_tunnel_close_all(w);
	or_tunnel_out_close_all(w);
	/* Run the frees conn_close deferred: the loop is not running any more. */
	ev_run_deferred(w->loop);
}
