// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The sending end of an mTLS tunnel. The proxies keep doing plain socket
 * I/O: they get one end of a socketpair at once, and the tunnel behind the
 * other end connects from inside the source pod's netns to
 * <destination pod IP>:15008, handshakes TLS 1.3 under the source pod's
 * SVID (resuming the last session with that destination), checks the peer
 * is the workload expected there, sends CONNECT and, on 200, streams.
 * If any of that fails, the proxy's end sees the connection close before
 * any response: an HTTP try then counts as reset (retried when safe).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "log.h"
#include "netns.h"
#include "overload.h"
#include "sock.h"
#include "tls.h"
#include "tls_pump.h"
#include "tunnel_proto.h"
#include "tunnel_out.h"

#define SETUP_MS 5000
#define EXPIRED_QUIET_MS 1000 /* an expired tunnel quiet this long is closed */

struct or_tunnel_out_stats or_tunnel_out_stats;

enum ostate { O_CONNECTING, O_HANDSHAKE, O_WAIT_200, O_OPEN };

struct or_oconn {
	struct or_worker *w;
	struct or_oconn *prev, *next;
	struct ev_io net;   /* TCP to the destination pod's :15008 */
	struct ev_io pair;  /* our end of the socketpair the proxy holds */
	struct ev_timer timer;
	struct ev_deferred defer;
	struct or_tls_id *id;
	enum ostate st;
	bool closed;
	int hs_wants;
	char expect[OR_SPIFFE_ID_MAX]; /* the workload that must answer, or "" */
	bool http; /* the proxy speaks HTTP through us: a denial becomes a 403 */
	time_t expires;   /* open: the sooner of our SVID's and the peer's not_after */
	uint64_t last_ms; /* open: when bytes last moved */
	char dest[64];
	struct or_tunnel_target target;
	struct or_tls_pump pump;
	char mem[2 * OR_TLS_PUMP_BUF];
};

static void oc_free(struct ev_deferred *d)
{
	struct or_oconn *c = container_of(d, struct or_oconn, defer);

	or_overload_buffers(-(int64_t)sizeof(c->mem));
	SSL_free(c->pump.ssl);
	or_tls_id_put(c->id);
	free(c);
}

static void oc_close(struct or_oconn *c, const char *why)
{
	struct or_worker *w = c->w;

	if (c->closed)
		return;
	c->closed = true;
	if (c->st != O_OPEN) {
		atomic_fetch_add(&or_tunnel_out_stats.failed, 1);
		or_debug("tunnel failed", "dest=%s expect=\"%s\" why=\"%s\"", c->dest, c->expect, why);
	}
	ev_timer_stop(w->loop, &c->timer);
	ev_io_del(w->loop, &c->net);
	close(c->net.fd);
	ev_io_del(w->loop, &c->pair);
	close(c->pair.fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		w->oconns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	ev_defer(w->loop, &c->defer, oc_free);
}

static void oc_update(struct or_oconn *c)
{
	unsigned int net, pair;

	if (c->closed)
		return;
	if (c->st == O_OPEN && or_tls_pump_done(&c->pump)) {
		oc_close(c, "done");
		return;
	}
	or_tls_pump_events(&c->pump, &net, &pair);
	switch (c->st) {
	case O_CONNECTING:
		net = EV_WRITE;
		pair = 0;
		break;
	case O_HANDSHAKE:
		net = c->hs_wants == SSL_ERROR_WANT_WRITE ? EV_WRITE : EV_READ;
		pair = 0;
		break;
	case O_WAIT_200:
		pair = 0; /* the proxy's bytes wait in the socketpair until then */
		break;
	case O_OPEN:
		break;
	}
	if (ev_io_set(c->w->loop, &c->net, net) || ev_io_set(c->w->loop, &c->pair, pair))
		oc_close(c, "epoll");
}

static void handshake(struct or_oconn *c)
{
	struct or_tunnel_target t;
	const char *peer;
	char buf[512];
	int r, e, n;

	ERR_clear_error(); /* SSL_get_error below reads this thread's queue */
	r = SSL_do_handshake(c->pump.ssl);
	if (r != 1) {
		e = SSL_get_error(c->pump.ssl, r);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
			c->hs_wants = e;
			return;
		}
		or_tls_count_failure(c->pump.ssl);
		oc_close(c, or_tls_error(buf, sizeof(buf)));
		return;
	}
	atomic_fetch_add(&or_tls_stats.handshakes, 1);
	if (SSL_session_reused(c->pump.ssl))
		atomic_fetch_add(&or_tls_stats.resumed, 1);
	peer = or_tls_peer_id(c->pump.ssl);
	if (c->expect[0] && (!peer || strcmp(peer, c->expect) != 0)) {
		oc_close(c, "the peer is not the workload expected at this address");
		return;
	}
	/* The CONNECT target: the address part of dest, and the app's port. */
	t = c->target;
	n = or_tunnel_http1.build_request(&t, buf, sizeof(buf));
	if (n < 0 || or_tls_pump_queue(&c->pump, buf, n)) {
		oc_close(c, "cannot build CONNECT");
		return;
	}
	c->st = O_WAIT_200;
}

static void expiry_arm(struct or_oconn *c);

/* The answer to our CONNECT: 200 opens the stream, anything else ends it. */
static int read_answer(struct or_oconn *c)
{
	enum or_tunnel_parse p;
	size_t used = 0;
	int status = 0;

	if (or_tls_pump_read(&c->pump))
		return -1;
	p = or_tunnel_http1.parse_response(c->pump.from_tls.buf + c->pump.from_tls.off,
					   c->pump.from_tls.len, &status, &used);
	if (p == OR_TP_INCOMPLETE)
		return c->pump.tls_eof ? -1 : 0;
	if (p == OR_TP_BAD || status != 200) {
		or_debug("tunnel refused by peer", "dest=%s status=%d", c->dest, status);
		if (status == 403 && c->http) {
			static const char denied[] =
				"HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\n"
				"content-length: 47\r\nx-outrider-reason: denied\r\n"
				"connection: close\r\n\r\n"
				"denied by the destination's authorization rules";

			/* Fits the empty socketpair buffer at once; best effort otherwise. */
			if (send(c->pair.fd, denied, sizeof(denied) - 1, MSG_NOSIGNAL) < 0)
				or_debug("cannot pass the denial on", "dest=%s", c->dest);
		}
		return -1;
	}
	or_tls_pump_consume(&c->pump, used);
	c->pump.plain = c->pair.fd;
	c->st = O_OPEN;
	expiry_arm(c);
	atomic_fetch_add(&or_tunnel_out_stats.established, 1);
	return 0;
}

/* Open: the timer now waits for the first identity of the tunnel to expire. */
static void expiry_arm(struct or_oconn *c)
{
	const ASN1_TIME *peer_end = NULL;
	X509 *peer = SSL_get0_peer_certificate(c->pump.ssl);
	time_t now = time(NULL);
	int days = 0, secs = 0;

	c->expires = c->id ? c->id->svid->not_after : 0;
	if (peer)
		peer_end = X509_get0_notAfter(peer);
	if (peer_end && ASN1_TIME_diff(&days, &secs, NULL, peer_end)) {
		time_t end = now + (time_t)days * 86400 + secs;

		if (!c->expires || end < c->expires)
			c->expires = end;
	}
	c->last_ms = ev_now_ms(c->w->loop);
	if (!c->expires) {
		ev_timer_stop(c->w->loop, &c->timer);
		return;
	}
	ev_timer_start(c->w->loop, &c->timer,
		       c->expires > now ? (uint64_t)(c->expires - now) * 1000 + 1 : 0);
}

static void step(struct or_oconn *c)
{
	int err = 0;

	c->last_ms = ev_now_ms(c->w->loop);
	if (c->st == O_HANDSHAKE) {
		handshake(c);
		if (c->closed || c->st == O_HANDSHAKE) {
			oc_update(c);
			return;
		}
	}
	if (c->st == O_WAIT_200) {
		/* Flush the CONNECT, then look for the answer. */
		err = or_tls_pump_run(&c->pump);
		if (!err)
			err = read_answer(c);
	}
	if (!err && c->st == O_OPEN)
		err = or_tls_pump_run(&c->pump);
	if (c->closed)
		return;
	if (err) {
		oc_close(c, "stream error");
		return;
	}
	oc_update(c);
}

static void on_net(struct ev_loop *loop, struct ev_io *io, unsigned int revents)
{
	struct or_oconn *c = container_of(io, struct or_oconn, net);
	int err;

	if (c->closed)
		return;
	if (c->st == O_CONNECTING) {
		err = or_sock_error(c->net.fd);
		if (err) {
			oc_close(c, strerror(-err));
			return;
		}
		c->st = O_HANDSHAKE;
	}
	step(c);
}

static void on_pair(struct ev_loop *loop, struct ev_io *io, unsigned int revents)
{
	struct or_oconn *c = container_of(io, struct or_oconn, pair);

	if (!c->closed)
		step(c);
}

static void on_timeout(struct ev_loop *loop, struct ev_timer *t)
{
	struct or_oconn *c = container_of(t, struct or_oconn, timer);
	uint64_t quiet;

	if (c->st != O_OPEN) {
		oc_close(c, "tunnel setup took too long");
		return;
	}
	/*
	 * An identity that authenticated this tunnel has expired. What is in
	 * flight runs on (a long stream outlives the SVID it began with), but
	 * once the tunnel goes quiet it is closed, so that it never carries a
	 * new request (an idle pooled HTTP connection) on an expired identity.
	 */
	quiet = ev_now_ms(loop) - c->last_ms;
	if (quiet >= EXPIRED_QUIET_MS) {
		oc_close(c, "an identity of this tunnel expired");
		return;
	}
	ev_timer_start(loop, t, EXPIRED_QUIET_MS - quiet);
}

int or_tunnel_open(struct or_worker *w, struct or_pod_rt *pod, const struct or_ip *ip,
		   uint16_t port, const char *expect_id, bool http)
{
	struct or_tls_id *id = or_pod_tls_get(pod);
	struct or_oconn *c = NULL;
	int sv[2] = { -1, -1 }, net = -1, in_progress = 0, err;
	char ipstr[OR_IP_STRLEN];

	if (!id)
		return -ENOKEY;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == -1) {
		err = -errno;
		goto fail;
	}
	err = or_netns_enter(pod->netns_fd);
	if (err)
		goto fail;
	net = or_sock_connect(ip, OR_PORT_TUNNEL, &in_progress);
	or_netns_leave();
	if (net < 0) {
		err = net;
		net = -1;
		goto fail;
	}
	err = -ENOMEM;
	c = malloc(sizeof(*c));
	if (!c)
		goto fail;
	memset(c, 0, offsetof(struct or_oconn, mem));
	or_overload_buffers((int64_t)sizeof(c->mem));
	c->w = w;
	c->id = id;
	c->target.ip = *ip;
	c->target.port = port;
	snprintf(c->dest, sizeof(c->dest), "%s:%u", or_ip_str(ip, ipstr, sizeof(ipstr)), port);
	snprintf(c->expect, sizeof(c->expect), "%s", expect_id ? expect_id : "");
	c->http = http;
	c->pump.plain = -1;
	c->pump.from_tls.buf = c->mem;
	c->pump.to_tls.buf = c->mem + OR_TLS_PUMP_BUF;
	/* Sessions are with the destination's agent at ip:15008, whatever the app port. */
	c->pump.ssl = or_tls_client_new(id, or_ip_str(ip, ipstr, sizeof(ipstr)));
	if (!c->pump.ssl || !SSL_set_fd(c->pump.ssl, net))
		goto fail;
	c->st = in_progress ? O_CONNECTING : O_HANDSHAKE;
	ev_timer_init(&c->timer, on_timeout);
	if (ev_io_add(w->loop, &c->net, net, EV_WRITE, on_net))
		goto fail;
	if (ev_io_add(w->loop, &c->pair, sv[1], 0, on_pair)) {
		ev_io_del(w->loop, &c->net);
		goto fail;
	}
	c->next = w->oconns;
	if (w->oconns)
		w->oconns->prev = c;
	w->oconns = c;
	ev_timer_start(w->loop, &c->timer, SETUP_MS);
	atomic_fetch_add(&or_tunnel_out_stats.opened, 1);
	return sv[0];
fail:
	if (c) {
		or_overload_buffers(-(int64_t)sizeof(c->mem));
		SSL_free(c->pump.ssl);
		free(c);
	}
	if (net != -1)
		close(net);
	if (sv[0] != -1) {
		close(sv[0]);
		close(sv[1]);
	}
	or_tls_id_put(id);
	return err;
}

void or_tunnel_out_close_all(struct or_worker *w)
{
	while (w->oconns)
		oc_close(w->oconns, "agent stopping");
}
