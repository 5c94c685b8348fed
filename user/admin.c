// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The admin endpoints: one request per connection, answered and closed.
 *
 * A client's life: READING (until a complete request head, 8 KiB at most)
 * -> WRITING (the whole response, however many writes it takes) ->
 * LINGERING (our side shut down, its leftover bytes read and dropped until
 * it closes, so that closing with unread data does not reset the connection
 * before the client has read the answer). Each phase has a deadline: 5 s for
 * the request; 5 s more for the answer, plus time for a big one at a slow
 * but steady 64 KB/s; at most 1 s of lingering within that.
 */
#include <errno.h>
#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "admin.h"
#include "log.h"
#include "sock.h"

#define ADMIN_MAX_REQUEST 8192  /* a request head must fit in this */
#define ADMIN_DEADLINE_MS 5000  /* to send a request head; and to read a short answer */
#define ADMIN_MIN_RATE 64       /* bytes/ms a client must read at: more time for big answers */
#define ADMIN_LINGER_MS 1000    /* at most, after the answer, for the client to close */
#define ADMIN_LINGER_BYTES 65536 /* dropped after the answer before we stop reading */
#define ADMIN_MAX_CLIENTS 64    /* per port; more at once are closed at accept */
#define ADMIN_ACCEPT_BATCH 16   /* accepts per wakeup, so one port cannot starve the loop */
#define ADMIN_BACKOFF_MS 100    /* listener pause when out of fds or memory */
#define ADMIN_BACKLOG 64

enum client_state { C_READING, C_WRITING, C_LINGERING };

struct admin_listener {
	struct or_admin *a;
	struct ev_io io;
	struct ev_timer backoff; /* re-enables accepting after EMFILE and friends */
	size_t n_clients; /* each port has its own limit: scrapes cannot starve probes */
	bool metrics;
	bool added; /* io registered with the loop */
};

struct admin_client {
	struct ev_io io;
	struct ev_timer deadline;
	struct ev_deferred defer;
	struct or_admin *a;
	struct admin_listener *l;         /* accepted on: counts us, says what we serve */
	struct admin_client *prev, *next; /* a->clients */
	bool closed;
	enum client_state state;
	uint64_t expires_ms; /* ev_now_ms() based end of the deadline */
	size_t in_len;
	size_t drained; /* bytes dropped while lingering */
	char *out;      /* the whole response, owned */
	size_t out_len, out_off;
	char in[ADMIN_MAX_REQUEST];
};

struct or_admin {
	struct ev_loop *loop;
	struct or_admin_hooks hooks;
	struct admin_listener lis[2]; /* admin_address, ready_address */
	struct admin_client *clients;
	bool stopped;
	struct ev_deferred defer;
};

/* Request parsing. */

struct parse_state {
	struct or_admin_req *req;
	size_t path_len;
	bool in_query;      /* past '?' or '#': the rest of the target is not the path */
	bool path_too_long;
	char field[20];     /* the header name being read, lower case, cut short */
	size_t field_len;
	bool in_value;      /* the last callback was a value: a new name starts */
	unsigned int content_length, transfer_encoding;
	bool head_done;
};

static int on_url(http_parser *p, const char *at, size_t len)
{
	struct parse_state *ps = p->data;

	for (size_t i = 0; i < len && !ps->in_query; i++) {
		if (at[i] == '?' || at[i] == '#') {
			ps->in_query = true;
		} else if (ps->path_len + 1 < sizeof(ps->req->path)) {
			ps->req->path[ps->path_len++] = at[i];
		} else {
			ps->path_too_long = true;
			ps->in_query = true;
		}
	}
	return 0;
}

/* Counts the headers that decide where a body ends, once per header line. */
static void end_field(struct parse_state *ps)
{
	if (ps->field_len == 14 && memcmp(ps->field, "content-length", 14) == 0)
		ps->content_length++;
	else if (ps->field_len == 17 && memcmp(ps->field, "transfer-encoding", 17) == 0)
		ps->transfer_encoding++;
	ps->field_len = 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
	struct parse_state *ps = p->data;

	ps->in_value = false;
	for (size_t i = 0; i < len; i++) {
		/* Longer than any name we look for: make it match none. */
		if (ps->field_len >= sizeof(ps->field)) {
			ps->field[0] = 0;
			break;
		}
		ps->field[ps->field_len++] = at[i] >= 'A' && at[i] <= 'Z' ? at[i] + 32 : at[i];
	}
	return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
	struct parse_state *ps = p->data;

	if (!ps->in_value)
		end_field(ps);
	ps->in_value = true;
	return 0;
}

static int on_headers_complete(http_parser *p)
{
	struct parse_state *ps = p->data;

	if (!ps->in_value && ps->field_len)
		end_field(ps);
	ps->head_done = true;
	/* Stop here: whatever follows the head is not ours to parse. */
	http_parser_pause(p, 1);
	return 0;
}

/*
 * What http-parser lets through but a server must refuse (RFC 9112): a NUL
 * or a CR not followed by LF anywhere in the head, and obs-fold (a line
 * starting with SP or HTAB). head is the head up to, not including, its
 * last LF.
 */
static bool head_clean(const char *head, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		switch (head[i]) {
		case '\0':
			return false;
		case '\r':
			if (head[i + 1] != '\n') /* i + 1 <= len: the last LF is readable */
				return false;
			break;
		case '\n':
			if (head[i + 1] == ' ' || head[i + 1] == '\t')
				return false;
			break;
		}
	}
	return true;
}

static enum or_admin_parse parse(const char *buf, size_t len, struct or_admin_req *req)
{
	static const http_parser_settings settings = {
		.on_url = on_url,
		.on_header_field = on_header_field,
		.on_header_value = on_header_value,
		.on_headers_complete = on_headers_complete,
	};
	struct parse_state ps = { .req = req };
	size_t n, parsed;
	http_parser p;

	/* Only the first ADMIN_MAX_REQUEST bytes can hold the head we accept. */
	n = len < ADMIN_MAX_REQUEST ? len : ADMIN_MAX_REQUEST;
	http_parser_init(&p, HTTP_REQUEST);
	p.data = &ps;
	parsed = http_parser_execute(&p, &settings, buf, n);
	if (!ps.head_done) {
		if (HTTP_PARSER_ERRNO(&p) != HPE_OK)
			return OR_ADMIN_BAD;
		return n == ADMIN_MAX_REQUEST ? OR_ADMIN_TOO_LARGE : OR_ADMIN_INCOMPLETE;
	}
	/* Paused in on_headers_complete: parsed is the offset of the head's last LF. */
	if (HTTP_PARSER_ERRNO(&p) != HPE_PAUSED || parsed >= n || buf[parsed] != '\n')
		return OR_ADMIN_BAD;
	if (!head_clean(buf, parsed))
		return OR_ADMIN_BAD;
	/* Two lengths, or a length and chunking: where the body ends is ambiguous. */
	if (ps.content_length > 1 || (ps.content_length && ps.transfer_encoding))
		return OR_ADMIN_BAD;
	/* HTTP/0.9 ("GET /" and nothing else) and 2.x are not what we answer. */
	if (p.http_major != 1)
		return OR_ADMIN_BAD;
	if (ps.path_too_long)
		return OR_ADMIN_TOO_LARGE;
	if (!ps.path_len)
		return OR_ADMIN_BAD;
	snprintf(req->method, sizeof(req->method), "%s", http_method_str(p.method));
	return OR_ADMIN_OK;
}

enum or_admin_parse or_admin_parse_request(const char *buf, size_t len, struct or_admin_req *req)
{
	enum or_admin_parse res;

	memset(req, 0, sizeof(*req));
	res = parse(buf, len, req);
	if (res != OR_ADMIN_OK)
		memset(req, 0, sizeof(*req)); /* half a path is nobody's business */
	return res;
}

/* Clients. */

static void client_free(struct ev_deferred *d)
{
	struct admin_client *c = container_of(d, struct admin_client, defer);

	free(c->out);
	free(c);
}

static void client_close(struct admin_client *c)
{
	struct or_admin *a = c->a;

	if (c->closed)
		return;
	c->closed = true;
	ev_timer_stop(a->loop, &c->deadline);
	ev_io_del(a->loop, &c->io);
	close(c->io.fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		a->clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->l->n_clients--;
	ev_defer(a->loop, &c->defer, client_free);
}

static const char *status_text(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 431:
		return "Request Header Fields Too Large";
	case 503:
		return "Service Unavailable";
	default:
		return "Internal Server Error";
	}
}

/*
 * Makes c's response: the head, then body (body_len bytes) unless head_only.
 * Takes nothing from the caller. Returns 0 or -ENOMEM.
 */
static int set_response(struct admin_client *c, int status, const char *content_type,
			const char *extra_headers, const char *body, size_t body_len,
			bool head_only)
{
	char head[512];
	size_t total;
	int n;

	n = snprintf(head, sizeof(head),
		     "HTTP/1.1 %d %s\r\n"
		     "Content-Type: %s\r\n"
		     "Content-Length: %zu\r\n"
		     "%s"
		     "Connection: close\r\n"
		     "\r\n",
		     status, status_text(status), content_type, body_len, extra_headers);
	if (n < 0 || (size_t)n >= sizeof(head))
		return -ENOMEM; /* cannot happen with our own constants */
	total = n + (head_only ? 0 : body_len);
	free(c->out);
	c->out = malloc(total);
	if (!c->out)
		return -ENOMEM;
	memcpy(c->out, head, n);
	if (!head_only)
		memcpy(c->out + n, body, body_len);
	c->out_len = total;
	c->out_off = 0;
	return 0;
}

static int set_text(struct admin_client *c, int status, const char *extra, const char *text,
		    bool head_only)
{
	return set_response(c, status, "text/plain; charset=utf-8", extra, text, strlen(text),
			    head_only);
}

static int respond_metrics(struct admin_client *c, bool head_only)
{
	const struct or_admin_hooks *h = &c->a->hooks;
	struct or_metrics_node node = { .stats_map_fd = -1, .breakers_map_fd = -1 };
	char *text = NULL;
	size_t len = 0;
	int err;

	if (h->node_metrics)
		h->node_metrics(h->ctx, &node);
	err = or_metrics_render(&node, &text, &len);
	if (err)
		return set_text(c, 500, "", "cannot render metrics\n", head_only);
	err = set_response(c, 200, "text/plain; version=0.0.4; charset=utf-8", "", text, len,
			   head_only);
	free(text);
	return err;
}

/* The response to a parse result (and the request, when it parsed). */
static int route(struct admin_client *c, enum or_admin_parse res, const struct or_admin_req *req)
{
	const struct or_admin_hooks *h = &c->a->hooks;
	bool get, head, metrics, ready;

	switch (res) {
	case OR_ADMIN_OK:
		break;
	case OR_ADMIN_TOO_LARGE:
		return set_text(c, 431, "", "request too large\n", false);
	default:
		return set_text(c, 400, "", "bad request\n", false);
	}
	get = strcmp(req->method, "GET") == 0;
	head = strcmp(req->method, "HEAD") == 0;
	metrics = c->l->metrics && strcmp(req->path, "/metrics") == 0;
	ready = strcmp(req->path, "/healthz/ready") == 0;
	if (!metrics && !ready)
		return set_text(c, 404, "", "not found\n", head);
	if (!get && !head)
		return set_text(c, 405, "Allow: GET, HEAD\r\n", "method not allowed\n", false);
	if (metrics)
		return respond_metrics(c, head);
	if (h->ready && h->ready(h->ctx))
		return set_text(c, 200, "", "ready\n", head);
	return set_text(c, 503, "", "not ready\n", head);
}

/* Our answer is out: stop writing, let the client read it and close first. */
static void start_linger(struct admin_client *c)
{
	struct ev_loop *loop = c->a->loop;
	uint64_t now = ev_now_ms(loop), left;

	if (shutdown(c->io.fd, SHUT_WR) == -1 || ev_io_set(loop, &c->io, EV_READ)) {
		client_close(c);
		return;
	}
	c->state = C_LINGERING;
	left = c->expires_ms > now ? c->expires_ms - now : 0;
	if (ev_timer_start(loop, &c->deadline, left < ADMIN_LINGER_MS ? left : ADMIN_LINGER_MS))
		client_close(c);
}

static void client_write(struct admin_client *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->io.fd, c->out + c->out_off, c->out_len - c->out_off,
				 MSG_NOSIGNAL);

		if (n > 0) {
			c->out_off += n;
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN) {
			if (ev_io_set(c->a->loop, &c->io, EV_WRITE))
				client_close(c);
			return;
		}
		client_close(c);
		return;
	}
	start_linger(c);
}

static void respond(struct admin_client *c, enum or_admin_parse res,
		    const struct or_admin_req *req)
{
	uint64_t deadline;

	if (route(c, res, req)) {
		client_close(c); /* out of memory: nothing sensible to send */
		return;
	}
	or_debug("admin response", "status=%.3s port=%s", c->out + 9,
		 c->l->metrics ? "admin" : "ready");
	c->state = C_WRITING;
	deadline = ADMIN_DEADLINE_MS + c->out_len / ADMIN_MIN_RATE;
	c->expires_ms = ev_now_ms(c->a->loop) + deadline;
	if (ev_timer_start(c->a->loop, &c->deadline, deadline)) {
		client_close(c);
		return;
	}
	client_write(c);
}

static void client_read(struct admin_client *c)
{
	struct or_admin_req req;
	enum or_admin_parse res;
	ssize_t n;

	n = recv(c->io.fd, c->in + c->in_len, sizeof(c->in) - c->in_len, 0);
	if (n == -1) {
		if (errno != EAGAIN && errno != EINTR)
			client_close(c);
		return;
	}
	if (n == 0) {
		/* The client finished sending before a whole head: say so, if it still listens. */
		if (c->in_len)
			respond(c, OR_ADMIN_BAD, NULL);
		else
			client_close(c);
		return;
	}
	c->in_len += n;
	res = or_admin_parse_request(c->in, c->in_len, &req);
	if (res != OR_ADMIN_INCOMPLETE)
		respond(c, res, &req);
}

static void client_linger(struct admin_client *c)
{
	char sink[4096];
	ssize_t n = recv(c->io.fd, sink, sizeof(sink), 0);

	if (n > 0) {
		c->drained += n;
		if (c->drained > ADMIN_LINGER_BYTES)
			client_close(c);
	} else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
		client_close(c);
	}
}

static void on_client(struct ev_loop *loop, struct ev_io *io, unsigned int revents)
{
	struct admin_client *c = container_of(io, struct admin_client, io);

	if (c->closed) /* closed earlier in this batch; freed after it */
		return;
	switch (c->state) {
	case C_READING:
		if (revents & EV_READ)
			client_read(c);
		break;
	case C_WRITING:
		if (revents & EV_WRITE)
			client_write(c);
		break;
	case C_LINGERING:
		if (revents & EV_READ)
			client_linger(c);
		break;
	}
}

static void on_deadline(struct ev_loop *loop, struct ev_timer *t)
{
	struct admin_client *c = container_of(t, struct admin_client, deadline);

	if (c->state == C_READING)
		or_debug("admin client too slow to ask, dropped", "received=%zu", c->in_len);
	else if (c->state == C_WRITING)
		or_debug("admin client too slow to read, dropped", "sent=%zu of=%zu", c->out_off,
			 c->out_len);
	client_close(c);
}

/*
 * Serves a connected, non-blocking fd, which it owns from here on (closed on
 * failure too). Returns the client or NULL.
 */
static struct admin_client *client_new(struct or_admin *a, struct admin_listener *l, int fd)
{
	struct admin_client *c = malloc(sizeof(*c));

	if (!c)
		goto err_close;
	memset(c, 0, offsetof(struct admin_client, in));
	c->a = a;
	c->l = l;
	c->state = C_READING;
	c->expires_ms = ev_now_ms(a->loop) + ADMIN_DEADLINE_MS;
	ev_timer_init(&c->deadline, on_deadline);
	if (ev_timer_start(a->loop, &c->deadline, ADMIN_DEADLINE_MS))
		goto err_free;
	if (ev_io_add(a->loop, &c->io, fd, EV_READ, on_client))
		goto err_timer;
	c->next = a->clients;
	if (c->next)
		c->next->prev = c;
	a->clients = c;
	l->n_clients++;
	return c;

err_timer:
	ev_timer_stop(a->loop, &c->deadline);
err_free:
	free(c);
err_close:
	close(fd);
	return NULL;
}

/* Listeners. */

static void on_backoff(struct ev_loop *loop, struct ev_timer *t)
{
	struct admin_listener *l = container_of(t, struct admin_listener, backoff);

	ev_io_set(loop, &l->io, EV_READ);
}

static void on_accept(struct ev_loop *loop, struct ev_io *io, unsigned int revents)
{
	struct admin_listener *l = container_of(io, struct admin_listener, io);
	struct or_admin *a = l->a;

	if (a->stopped)
		return;
	for (int i = 0; i < ADMIN_ACCEPT_BATCH; i++) {
		int fd = accept4(io->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd == -1) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				/* Level-triggered: pause, or the loop spins on this listener. */
				or_warn("admin: cannot accept, pausing", "err=\"%s\" pause_ms=%d",
					strerror(errno), ADMIN_BACKOFF_MS);
				if (!ev_io_set(loop, io, 0) &&
				    ev_timer_start(loop, &l->backoff, ADMIN_BACKOFF_MS))
					ev_io_set(loop, io, EV_READ);
			}
			/* EAGAIN: drained; ECONNABORTED and the like: that client is gone. */
			return;
		}
		if (l->n_clients >= ADMIN_MAX_CLIENTS) {
			or_debug("admin: too many clients, closing a new one", "max=%d",
				 ADMIN_MAX_CLIENTS);
			close(fd);
			continue;
		}
		client_new(a, l, fd);
	}
}

static int listen_on(struct or_admin *a, struct admin_listener *l, const struct or_ip *ip,
		     uint16_t port, bool metrics)
{
	char buf[OR_IP_STRLEN];
	int fd, err;

	l->a = a;
	l->metrics = metrics;
	ev_timer_init(&l->backoff, on_backoff);
	fd = a->hooks.inherited_fd ? a->hooks.inherited_fd(a->hooks.ctx, metrics) : -1;
	if (fd >= 0 && or_sock_is_listener(fd, ip, port)) {
		close(fd); /* bound elsewhere: the config changed between the agents */
		fd = -1;
	}
	if (fd < 0)
		fd = or_sock_listen(ip, port, ADMIN_BACKLOG);
	if (fd < 0) {
		or_error("admin: cannot listen", "address=%s port=%u err=\"%s\"",
			 or_ip_str(ip, buf, sizeof(buf)), port, strerror(-fd));
		return fd;
	}
	err = ev_io_add(a->loop, &l->io, fd, EV_READ, on_accept);
	if (err) {
		or_error("admin: cannot watch listener", "address=%s port=%u err=\"%s\"",
			 or_ip_str(ip, buf, sizeof(buf)), port, strerror(-err));
		close(fd);
		return err;
	}
	l->added = true;
	return 0;
}

static void unlisten(struct or_admin *a, struct admin_listener *l)
{
	if (!l->added)
		return;
	ev_timer_stop(a->loop, &l->backoff);
	ev_io_del(a->loop, &l->io);
	close(l->io.fd);
	l->added = false;
}

static void admin_free(struct ev_deferred *d)
{
	free(container_of(d, struct or_admin, defer));
}

int or_admin_start(struct ev_loop *loop, const struct or_ip *admin_ip, uint16_t admin_port,
		   const struct or_ip *ready_ip, uint16_t ready_port,
		   const struct or_admin_hooks *hooks, struct or_admin **out)
{
	char abuf[OR_IP_STRLEN], rbuf[OR_IP_STRLEN];
	struct or_admin *a;
	int err;

	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->loop = loop;
	if (hooks)
		a->hooks = *hooks;
	err = listen_on(a, &a->lis[0], admin_ip, admin_port, true);
	if (err)
		goto err_free;
	err = listen_on(a, &a->lis[1], ready_ip, ready_port, false);
	if (err)
		goto err_unlisten;
	or_info("admin listening", "metrics=%s:%u ready=%s:%u",
		or_ip_str(admin_ip, abuf, sizeof(abuf)), admin_port,
		or_ip_str(ready_ip, rbuf, sizeof(rbuf)), ready_port);
	*out = a;
	return 0;

err_unlisten:
	unlisten(a, &a->lis[0]);
err_free:
	free(a);
	return err;
}

int or_admin_listener_fd(const struct or_admin *a, bool metrics)
{
	const struct admin_listener *l;

	if (!a)
		return -1;
	l = &a->lis[metrics ? 0 : 1];
	return l->added ? l->io.fd : -1;
}

void or_admin_stop(struct or_admin *a)
{
	if (!a || a->stopped)
		return;
	a->stopped = true;
	unlisten(a, &a->lis[0]);
	unlisten(a, &a->lis[1]);
	while (a->clients)
		client_close(a->clients);
	/* Events for a and its clients may still be queued in this batch. */
	ev_defer(a->loop, &a->defer, admin_free);
}
