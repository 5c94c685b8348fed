// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "netns.h"
#include "proxy.h"
#include "routes.h"
#include "sock.h"

struct or_proxy_ctx or_proxy;

/* One direction of a connection: bytes read from one side, not yet written. */
struct half {
	char *buf;
	uint32_t off, len;
	bool rd_eof;  /* the source sent FIN */
	bool wr_shut; /* FIN passed on to the destination */
};

struct or_conn {
	struct or_worker *w;
	struct or_conn *prev, *next; /* the worker's list */
	struct ev_io dn;             /* the app's side (accepted in the pod) */
	struct ev_io up;             /* the endpoint's side */
	struct ev_timer timer;       /* connect timeout */
	struct ev_deferred defer;
	struct or_pod_rt *pod;
	struct or_routes *routes;
	struct or_route *route;
	int ep;
	bool connecting;
	bool closed;
	struct half d2u, u2d;
	char mem[2 * OR_CONN_BUF];
};

static void conn_free(struct ev_deferred *d)
{
	struct or_conn *c = container_of(d, struct or_conn, defer);

	or_routes_put(c->routes);
	or_pod_rt_put(c->pod);
	free(c);
}

/* Ends the connection; with rst both sides see a reset instead of a FIN. */
static void conn_close(struct or_conn *c, bool rst)
{
	struct or_worker *w = c->w;

	if (c->closed)
		return;
	c->closed = true;
	ev_timer_stop(w->loop, &c->timer);
	ev_io_del(w->loop, &c->dn);
	if (rst)
		or_sock_close_rst(c->dn.fd);
	else
		close(c->dn.fd);
	if (c->up.fd != -1) {
		ev_io_del(w->loop, &c->up);
		if (rst)
			or_sock_close_rst(c->up.fd);
		else
			close(c->up.fd);
	}
	if (c->ep >= 0)
		or_lb_release(&c->route->lb, c->ep);
	if (c->prev)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	atomic_fetch_sub(&or_proxy.active, 1);
	ev_defer(w->loop, &c->defer, conn_free);
}

static bool has_room(const struct half *h)
{
	return h->off + h->len < OR_CONN_BUF;
}

/* Reads what fits from fd into h. Returns 0 or -errno (fatal). */
static int half_read(struct half *h, int fd)
{
	ssize_t n;

	if (h->rd_eof || !has_room(h))
		return 0;
	n = recv(fd, h->buf + h->off + h->len, OR_CONN_BUF - h->off - h->len, 0);
	if (n > 0)
		h->len += n;
	else if (n == 0)
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
		    unsigned int revents)
{
	int err = 0;

	if (revents & EV_READ) {
		err = half_read(h_in, from);
		if (!err)
			err = half_write(h_in, to);
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
	if (c->connecting) {
		/* Only a hang-up can be reported here: the app gave up. */
		if (revents & EV_ERROR)
			conn_close(c, true);
		return;
	}
	on_side(c, c->dn.fd, c->up.fd, &c->d2u, &c->u2d, revents);
}

static void connected(struct or_conn *c)
{
	c->connecting = false;
	ev_timer_stop(c->w->loop, &c->timer);
	conn_update(c);
}

static void on_up(struct ev_loop *loop, struct ev_io *io, unsigned int revents)
{
	struct or_conn *c = container_of(io, struct or_conn, up);
	int err;

	if (c->closed)
		return;
	if (c->connecting) {
		err = or_sock_error(c->up.fd);
		if (err) {
			or_proxy.stats.connect_failed++;
			or_debug("upstream connect failed", "pod=%s service=%s err=\"%s\"",
				 c->pod->name, c->route->name, strerror(-err));
			conn_close(c, true);
			return;
		}
		connected(c);
		return;
	}
	on_side(c, c->up.fd, c->dn.fd, &c->u2d, &c->d2u, revents);
}

static void on_timeout(struct ev_loop *loop, struct ev_timer *t)
{
	struct or_conn *c = container_of(t, struct or_conn, timer);

	or_proxy.stats.connect_timeout++;
	or_debug("upstream connect timed out", "pod=%s service=%s timeout_ms=%u", c->pod->name,
		 c->route->name, c->route->connect_timeout_ms);
	conn_close(c, true);
}

/* Creates the upstream socket inside the pod's netns: the endpoint sees the pod's IP. */
static int connect_in_pod(struct or_pod_rt *pod, const struct or_route_ep *ep, int *in_progress)
{
	int fd, err;

	err = or_netns_enter(pod->netns_fd);
	if (err)
		return err;
	fd = or_sock_connect(&ep->ip, ep->port, in_progress);
	or_netns_leave();
	return fd;
}

static int lookup_origdst(struct or_listener *l, int fd, struct or_dst *dst)
{
	struct or_origdst_key key = {
		.netns_cookie = l->pod->netns_cookie,
		.family = l->family == AF_INET ? OR_AF_INET : OR_AF_INET6,
	};
	int port = or_sock_peer_port(fd);

	if (port < 0)
		return port;
	key.port = port;
	return or_bpf_origdst_take(or_proxy.bpf, &key, dst);
}

void or_proxy_accept(struct or_worker *w, struct or_listener *l, int fd)
{
	struct or_routes *routes = NULL;
	struct or_route *route;
	struct or_conn *c = NULL;
	struct or_dst dst;
	struct or_ip vip;
	int ep, up, in_progress, err;

	or_proxy.stats.accepted++;
	if (atomic_fetch_add(&or_proxy.active, 1) >= atomic_load(&or_proxy.max_connections)) {
		atomic_fetch_sub(&or_proxy.active, 1);
		or_proxy.stats.refused_limit++;
		or_sock_close_rst(fd);
		return;
	}
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
	if (!route) {
		or_proxy.stats.no_route++;
		goto refuse;
	}
	ep = or_lb_pick(&route->lb, or_worker_rand, w);
	if (ep < 0) {
		or_proxy.stats.no_endpoint++;
		or_debug("no endpoint", "pod=%s service=%s", l->pod->name, route->name);
		goto refuse;
	}
	up = connect_in_pod(l->pod, &route->eps[ep], &in_progress);
	if (up < 0) {
		or_proxy.stats.connect_failed++;
		or_debug("upstream connect failed", "pod=%s service=%s err=\"%s\"", l->pod->name,
			 route->name, strerror(-up));
		goto refuse;
	}

	c = malloc(sizeof(*c));
	if (!c) {
		close(up);
		goto refuse;
	}
	memset(c, 0, offsetof(struct or_conn, mem));
	c->w = w;
	c->routes = routes;
	c->route = route;
	c->ep = ep;
	or_lb_acquire(&route->lb, ep);
	or_pod_rt_get(l->pod);
	c->pod = l->pod;
	c->d2u.buf = c->mem;
	c->u2d.buf = c->mem + OR_CONN_BUF;
	c->connecting = in_progress;
	ev_timer_init(&c->timer, on_timeout);
	c->next = w->conns;
	if (w->conns)
		w->conns->prev = c;
	w->conns = c;
	c->up.fd = up;
	if (ev_io_add(w->loop, &c->dn, fd, 0, on_dn) ||
	    ev_io_add(w->loop, &c->up, up, in_progress ? EV_WRITE : 0, on_up)) {
		c->up.fd = up;
		conn_close(c, true);
		return;
	}
	if (or_log_enabled(OR_LOG_DEBUG)) {
		char a[OR_IP_STRLEN], b[OR_IP_STRLEN];

		or_debug("proxying", "pod=%s service=%s dst=%s:%u endpoint=%s:%u worker=%u",
			 l->pod->name, route->name, or_ip_str(&vip, a, sizeof(a)), dst.port,
			 or_ip_str(&route->eps[ep].ip, b, sizeof(b)), route->eps[ep].port, w->id);
	}
	if (in_progress)
		ev_timer_start(w->loop, &c->timer, route->connect_timeout_ms);
	else
		connected(c);
	return;

refuse:
	or_routes_put(routes);
	atomic_fetch_sub(&or_proxy.active, 1);
	or_sock_close_rst(fd);
}

void or_proxy_close_all(struct or_worker *w)
{
	while (w->conns) {
		struct or_conn *c = w->conns;

		conn_close(c, false);
	}
	/* Run the frees conn_close deferred: the loop is not running any more. */
	ev_run_deferred(w->loop);
}
