// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "authz.h"
#include "log.h"
#include "metrics.h"
#include "netns.h"
#include "overload.h"
#include "proxy.h"
#include "routes.h"
#include "sock.h"
#include "tls.h"
#include "tls_pump.h"
#include "tunnel_in.h"
#include "tunnel_proto.h"

#define SETUP_MS 5000 /* handshake, CONNECT head and the app's connect */

struct or_tunnel_stats or_tunnel_stats;
_Atomic uint64_t or_tunnel_policy_gen;

enum tstate { T_HANDSHAKE, T_HEAD, T_CONNECTING, T_OPEN };

struct or_tconn {
	struct or_worker *w;
	struct or_tconn *prev, *next;
	struct ev_io net; /* the peer agent's TCP connection, carrying TLS */
	struct ev_io app; /* to the app inside the pod; fd -1 until connecting */
	struct ev_timer timer;
	struct ev_deferred defer;
	struct or_pod_rt *pod;
	struct or_tls_id *id;
	enum tstate st;
	bool closed;
	int hs_wants;    /* what the handshake waits for */
	size_t head_len; /* the CONNECT head at the start of pump.from_tls */
	struct or_tunnel_target target; /* as authorized */
	uint64_t policy_gen;            /* or_tunnel_policy_gen when authorized */
	struct or_tls_pump pump;
	char mem[2 * OR_TLS_PUMP_BUF];
};

static void tc_free(struct ev_deferred *d)
{
	struct or_tconn *c = container_of(d, struct or_tconn, defer);

	or_overload_buffers(-(int64_t)sizeof(c->mem));
	SSL_free(c->pump.ssl);
	or_tls_id_put(c->id);
	or_pod_rt_put(c->pod);
	free(c);
}

static void tc_close(struct or_tconn *c, const char *why)
{
	struct or_worker *w = c->w;
	const char *peer = c->pump.ssl ? or_tls_peer_id(c->pump.ssl) : NULL;

	if (c->closed)
		return;
	c->closed = true;
	or_debug("tunnel closed", "pod=%s peer=\"%s\" why=\"%s\"", c->pod->name,
		 peer ? peer : "-", why);
	ev_timer_stop(w->loop, &c->timer);
	ev_io_del(w->loop, &c->net);
	close(c->net.fd);
	if (c->app.fd != -1) {
		ev_io_del(w->loop, &c->app);
		close(c->app.fd);
	}
	if (c->prev)
		c->prev->next = c->next;
	else
		w->tconns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	atomic_fetch_sub(&or_proxy.active, 1);
	ev_defer(w->loop, &c->defer, tc_free);
}

static void tc_update(struct or_tconn *c);
static void on_app(struct ev_loop *loop, struct ev_io *io, unsigned int revents);

/* Answers the CONNECT with an error and ends the tunnel once it is out. */
static void refuse(struct or_tconn *c, int status, const char *why)
{
	const char *peer = or_tls_peer_id(c->pump.ssl);
	char buf[128];
	int n = or_tunnel_http1.build_response(status, buf, sizeof(buf));

	or_debug("tunnel refused", "pod=%s peer=\"%s\" status=%d why=\"%s\"", c->pod->name,
		 peer ? peer : "-", status, why);
	if (n < 0 || or_tls_pump_queue(&c->pump, buf, n)) {
		tc_close(c, why);
		return;
	}
	c->st = T_OPEN;
	or_tls_pump_consume(&c->pump, c->pump.from_tls.len);
	c->pump.tls_eof = true;   /* nothing more is read from the peer */
	c->pump.plain_eof = true; /* and no app will answer */
}

/*
 * Rules apply to the workload, as Istio's do: those of every service this
 * pod backs on this port, together. Any deny that matches denies; if there
 * are allow rules, one must match; with no rules at all, allowed.
 */
static struct or_authz_decision authorize(const struct or_tunnel_target *t, const char *peer)
{
	struct or_authz_decision d = { .allowed = true };
	struct or_routes *r = or_routes_get();
	struct or_authz_rule *all = NULL;
	size_t n = 0, cap = 0;

	for (size_t i = 0; r && i < r->n; i++) {
		const struct or_route *rt = &r->v[i];
		bool backs = false;

		for (size_t j = 0; j < rt->n_eps && !backs; j++)
			backs = rt->eps[j].port == t->port && or_ip_eq(&rt->eps[j].ip, &t->ip);
		if (!backs || !rt->n_authz)
			continue;
		if (n + rt->n_authz > cap) {
			struct or_authz_rule *na;

			cap = (n + rt->n_authz) * 2;
			na = realloc(all, cap * sizeof(*all));
			if (!na) {
				d.allowed = false; /* fail closed */
				goto out;
			}
			all = na;
		}
		memcpy(all + n, rt->authz, rt->n_authz * sizeof(*all));
		n += rt->n_authz;
	}
	if (n)
		d = or_authz_check(all, n, peer, t->port);
out:
	free(all);
	or_routes_put(r);
	return d;
}

/* The CONNECT head is in: check the target and the peer, then reach the app. */
static void on_head(struct or_tconn *c, const struct or_tunnel_target *t)
{
	const char *peer = or_tls_peer_id(c->pump.ssl);
	struct or_authz_decision d;
	struct or_ip lo;
	int fd, in_progress = 0, err;

	if (!or_ip_eq(&t->ip, &c->pod->ip) && !or_ip_eq(&t->ip, &c->pod->ip6)) {
		atomic_fetch_add(&or_tunnel_stats.bad_request, 1);
		refuse(c, 400, "target is not the pod this tunnel serves");
		return;
	}
	c->policy_gen = atomic_load(&or_tunnel_policy_gen);
	c->target = *t;
	d = authorize(t, peer ? peer : "");
	if (!d.allowed) {
		atomic_fetch_add(&or_tunnel_stats.denied, 1);
		or_info("tunnel denied", "pod=%s peer=\"%s\" port=%u rule_line=%d", c->pod->name,
			peer ? peer : "-", t->port, d.rule_line);
		refuse(c, 403, "denied by an authorization rule");
		return;
	}
	err = or_netns_enter(c->pod->netns_fd);
	if (err) {
		refuse(c, 502, "cannot enter the pod's netns");
		return;
	}
	/*
	 * Over loopback, not to the pod's address: the pod's sk_lookup program
	 * refuses plaintext to its own address under strict mTLS, and this
	 * connection is the tunnel's, already authenticated. (So apps must
	 * listen on the wildcard or loopback, as with Istio before 1.10.)
	 */
	c->app.fd = -1;
	or_ip_parse(t->ip.family == AF_INET ? "127.0.0.1" : "::1", &lo);
	fd = or_sock_connect(&lo, t->port, &in_progress);
	or_netns_leave();
	if (fd < 0) {
		atomic_fetch_add(&or_tunnel_stats.app_failed, 1);
		refuse(c, 502, strerror(-fd));
		return;
	}
	if (ev_io_add(c->w->loop, &c->app, fd, EV_WRITE, on_app)) {
		close(fd);
		c->app.fd = -1; /* ev_io_add set it: closed already, not to be closed again */
		refuse(c, 502, "cannot watch the app connection");
		return;
	}
	c->st = T_CONNECTING;
}

static void app_connected(struct or_tconn *c)
{
	char buf[64];
	int n = or_tunnel_http1.build_response(200, buf, sizeof(buf));

	ev_timer_stop(c->w->loop, &c->timer);
	c->st = T_OPEN;
	c->pump.plain = c->app.fd;
	atomic_fetch_add(&or_tunnel_stats.established, 1);
	if (n < 0 || or_tls_pump_queue(&c->pump, buf, n)) {
		tc_close(c, "cannot queue the 200");
		return;
	}
	/* Bytes the peer sent right after its CONNECT belong to the app. */
	or_tls_pump_consume(&c->pump, c->head_len);
	c->head_len = 0;
}

/* Reads the CONNECT head; decides once it is whole. */
static int read_head(struct or_tconn *c)
{
	struct or_tunnel_target t;
	const char *why = NULL;
	size_t used = 0;
	enum or_tunnel_parse p;

	if (or_tls_pump_read(&c->pump))
		return -1;
	p = or_tunnel_http1.parse_request(c->pump.from_tls.buf + c->pump.from_tls.off,
					  c->pump.from_tls.len, &t, &used, &why);
	if (p == OR_TP_INCOMPLETE)
		return c->pump.tls_eof ? -1 : 0;
	if (p == OR_TP_BAD) {
		atomic_fetch_add(&or_tunnel_stats.bad_request, 1);
		refuse(c, 400, why ? why : "malformed CONNECT");
		return 0;
	}
	c->head_len = used;
	on_head(c, &t);
	return 0;
}

static void tc_update(struct or_tconn *c)
{
	unsigned int net, app;

	if (c->closed)
		return;
	if (c->st == T_OPEN && or_tls_pump_done(&c->pump)) {
		tc_close(c, "done");
		return;
	}
	or_tls_pump_events(&c->pump, &net, &app);
	if (c->st == T_HEAD || c->st == T_CONNECTING) {
		/* Only the head is read until the app answers. */
		net = c->st == T_HEAD ? EV_READ : 0;
		if (c->pump.read_wants == SSL_ERROR_WANT_WRITE)
			net = EV_WRITE;
		app = c->st == T_CONNECTING ? EV_WRITE : 0;
	}
	if (c->app.fd != -1 && ev_io_set(c->w->loop, &c->app, app)) {
		tc_close(c, "epoll");
		return;
	}
	if (ev_io_set(c->w->loop, &c->net, net))
		tc_close(c, "epoll");
}

/* The rules changed since this tunnel was authorized: ask again. */
static bool still_allowed(struct or_tconn *c)
{
	uint64_t gen = atomic_load(&or_tunnel_policy_gen);
	const char *peer;

	if (c->st != T_OPEN || c->app.fd == -1 || gen == c->policy_gen)
		return true;
	c->policy_gen = gen;
	peer = or_tls_peer_id(c->pump.ssl);
	if (authorize(&c->target, peer ? peer : "").allowed)
		return true;
	atomic_fetch_add(&or_tunnel_stats.denied, 1);
	or_info("tunnel denied after a policy change", "pod=%s peer=\"%s\" port=%u",
		c->pod->name, peer ? peer : "-", c->target.port);
	return false;
}

/* Moves bytes in whatever state the tunnel is in; closes it on error. */
static void step(struct or_tconn *c)
{
	int err = 0;

	if (!still_allowed(c)) {
		tc_close(c, "denied after a policy change");
		return;
	}

	if (c->st == T_HEAD)
		err = read_head(c);
	if (!err && !c->closed && c->st == T_OPEN)
		err = or_tls_pump_run(&c->pump);
	if (c->closed)
		return;
	if (err) {
		tc_close(c, "stream error");
		return;
	}
	tc_update(c);
}

static void handshake(struct or_tconn *c)
{
	char buf[256];
	int r, e;

	ERR_clear_error(); /* SSL_get_error below reads this thread's queue */
	r = SSL_accept(c->pump.ssl);
	if (r == 1) {
		atomic_fetch_add(&or_tls_stats.handshakes, 1);
		if (SSL_session_reused(c->pump.ssl))
			atomic_fetch_add(&or_tls_stats.resumed, 1);
		c->st = T_HEAD;
		return;
	}
	e = SSL_get_error(c->pump.ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		c->hs_wants = e;
		return;
	}
	or_tls_count_failure(c->pump.ssl);
	or_debug("tunnel handshake failed", "pod=%s err=\"%s\"", c->pod->name,
		 or_tls_error(buf, sizeof(buf)));
	tc_close(c, "handshake failed");
}

static void on_net(struct ev_loop *loop, struct ev_io *io, unsigned int revents)
{
	struct or_tconn *c = container_of(io, struct or_tconn, net);

	if (c->closed)
		return;
	if (c->st == T_HANDSHAKE) {
		handshake(c);
		if (c->closed)
			return;
		if (c->st == T_HANDSHAKE) {
			ev_io_set(loop, &c->net,
				  c->hs_wants == SSL_ERROR_WANT_WRITE ? EV_WRITE : EV_READ);
			return;
		}
	}
	step(c);
}

static void on_app(struct ev_loop *loop, struct ev_io *io, unsigned int revents)
{
	struct or_tconn *c = container_of(io, struct or_tconn, app);
	int err;

	if (c->closed)
		return;
	if (c->st == T_CONNECTING) {
		err = or_sock_error(c->app.fd);
		if (err) {
			atomic_fetch_add(&or_tunnel_stats.app_failed, 1);
			ev_io_del(loop, &c->app);
			close(c->app.fd);
			c->app.fd = -1;
			refuse(c, 502, strerror(-err));
		} else {
			app_connected(c);
		}
		if (c->closed)
			return;
	}
	step(c);
}

static void on_timeout(struct ev_loop *loop, struct ev_timer *t)
{
	struct or_tconn *c = container_of(t, struct or_tconn, timer);

	if (c->st != T_OPEN)
		tc_close(c, "setup took too long");
}

void or_tunnel_accept(struct or_worker *w, struct or_listener *l, int fd)
{
	struct or_tls_id *id = NULL;
	struct or_tconn *c = NULL;

	atomic_fetch_add(&or_tunnel_stats.accepted, 1);
	/* Over max_connections, or near the memory limit: the peer agent sees a close. */
	if (atomic_fetch_add(&or_proxy.active, 1) >= atomic_load(&or_proxy.max_connections)) {
		or_proxy.stats.refused_limit++;
		or_overload_count(OR_OVERLOAD_MAX_CONNECTIONS);
	} else if (or_overload_shed(ev_now_ms(w->loop))) {
		or_overload_count(OR_OVERLOAD_MEMORY);
	} else {
		id = or_pod_tls_get(l->pod);
		c = id ? malloc(sizeof(*c)) : NULL;
	}
	if (!c) {
		or_tls_id_put(id);
		atomic_fetch_sub(&or_proxy.active, 1);
		close(fd);
		return;
	}
	memset(c, 0, offsetof(struct or_tconn, mem));
	or_overload_buffers((int64_t)sizeof(c->mem));
	c->w = w;
	c->id = id;
	or_pod_rt_get(l->pod);
	c->pod = l->pod;
	c->app.fd = -1;
	c->pump.plain = -1;
	c->pump.from_tls.buf = c->mem;
	c->pump.to_tls.buf = c->mem + OR_TLS_PUMP_BUF;
	c->st = T_HANDSHAKE;
	ev_timer_init(&c->timer, on_timeout);
	c->next = w->tconns;
	if (w->tconns)
		w->tconns->prev = c;
	w->tconns = c;
	c->pump.ssl = SSL_new(id->server);
	if (!c->pump.ssl || !SSL_set_fd(c->pump.ssl, fd) ||
	    ev_io_add(w->loop, &c->net, fd, EV_READ, on_net)) {
		c->net.fd = fd;
		tc_close(c, "setup failed");
		return;
	}
	ev_timer_start(w->loop, &c->timer, SETUP_MS);
}

void or_tunnel_close_all(struct or_worker *w)
{
	while (w->tconns)
		tc_close(w->tconns, "agent stopping");
}
