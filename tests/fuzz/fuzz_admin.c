// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * libFuzzer target for everything in admin.c that sees a client's bytes:
 * or_admin_parse_request on its own, then a whole client's life on a real
 * socket pair: the bytes arrive in chunks, maybe followed by EOF, and the
 * answer must be one well-formed response whose status follows from what
 * the parser says about the same bytes. admin.c is included rather than
 * linked, to drive its (static) client code without a listener.
 *
 * The first byte steers the run: bit 0 admin port (else ready port), bit 1
 * the ready hook's answer, bit 2 EOF after the bytes, bits 3..7 chunk size - 1.
 */
#include "../../user/admin.c"

#include <stdint.h>

#define CHECK(cond)                     \
	do {                            \
		if (!(cond))            \
			__builtin_trap(); \
	} while (0)

static bool fuzz_ready;

static bool hook_ready(void *ctx)
{
	return fuzz_ready;
}

static void check_parse(const char *buf, size_t len, enum or_admin_parse *res)
{
	struct or_admin_req req;

	memset(&req, 0x5a, sizeof(req)); /* whatever the caller left there */
	*res = or_admin_parse_request(buf, len, &req);
	CHECK(*res >= OR_ADMIN_INCOMPLETE && *res <= OR_ADMIN_TOO_LARGE);
	CHECK(memchr(req.method, 0, sizeof(req.method)));
	CHECK(memchr(req.path, 0, sizeof(req.path)));
	if (*res == OR_ADMIN_OK) {
		CHECK(req.method[0] && req.path[0]);
		CHECK(!strpbrk(req.path, "?#"));
		/* The same head, given again with one more byte, parses the same way. */
		if (len < ADMIN_MAX_REQUEST) {
			struct or_admin_req again;
			char *more = malloc(len + 1);

			CHECK(more);
			memcpy(more, buf, len);
			more[len] = 'x';
			CHECK(or_admin_parse_request(more, len + 1, &again) == OR_ADMIN_OK);
			CHECK(strcmp(again.method, req.method) == 0);
			CHECK(strcmp(again.path, req.path) == 0);
			free(more);
		}
	} else {
		CHECK(!req.method[0] && !req.path[0]);
	}
}

/*
 * What the server must answer once it has all of buf, by the parser's
 * verdict; *head_only when the answer has no body (a HEAD that parsed).
 */
static int want_status(const char *buf, size_t len, bool metrics_port, bool eof, bool *head_only)
{
	struct or_admin_req req;
	bool known;

	*head_only = false;
	switch (or_admin_parse_request(buf, len, &req)) {
	case OR_ADMIN_INCOMPLETE:
		return eof && len ? 400 : 0; /* 0: no answer, the deadline ends it */
	case OR_ADMIN_TOO_LARGE:
		return 431;
	case OR_ADMIN_BAD:
		return 400;
	case OR_ADMIN_OK:
		break;
	}
	*head_only = strcmp(req.method, "HEAD") == 0;
	known = strcmp(req.path, "/healthz/ready") == 0 ||
		(metrics_port && strcmp(req.path, "/metrics") == 0);
	if (!known)
		return 404;
	if (strcmp(req.method, "GET") != 0 && strcmp(req.method, "HEAD") != 0)
		return 405;
	if (strcmp(req.path, "/metrics") == 0)
		return 200;
	return fuzz_ready ? 200 : 503;
}

/* Checks one response: status line, the headers we always send, the length. */
static void check_response(const char *rsp, size_t len, int want, bool head_only)
{
	const char *end, *cl;
	long clen;
	int status;

	if (!want) {
		CHECK(len == 0);
		return;
	}
	CHECK(len > 12 && memcmp(rsp, "HTTP/1.1 ", 9) == 0);
	status = (rsp[9] - '0') * 100 + (rsp[10] - '0') * 10 + (rsp[11] - '0');
	CHECK(status == want);
	end = memmem(rsp, len, "\r\n\r\n", 4);
	CHECK(end);
	cl = memmem(rsp, end - rsp, "\r\nContent-Length: ", 18);
	CHECK(cl);
	clen = strtol(cl + 18, NULL, 10);
	CHECK(memmem(rsp, end - rsp, "\r\nConnection: close", 19));
	if (head_only)
		CHECK((size_t)(end + 4 - rsp) == len);
	else
		CHECK((size_t)(end + 4 - rsp) + (size_t)clen == len);
}

static struct ev_loop *loop;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct or_admin a = { 0 };
	struct or_admin_hooks hooks = { .ready = hook_ready };
	enum or_admin_parse res;
	struct admin_client *c;
	bool metrics_port, eof, head_only;
	size_t chunk, off, rlen = 0, consumed;
	char *rsp;
	int sv[2], want;

	if (!size)
		return 0;
	metrics_port = data[0] & 1;
	fuzz_ready = data[0] & 2;
	eof = data[0] & 4;
	chunk = (data[0] >> 3) + 1;
	data++;
	size--;

	/* The parser alone, on an exact-size copy so ASan sees any overread. */
	{
		char *buf = malloc(size ? size : 1);

		CHECK(buf);
		memcpy(buf, data, size);
		check_parse(buf, size, &res);
		free(buf);
	}

	if (!loop) {
		loop = ev_loop_new();
		CHECK(loop);
		or_log_set_level_num(OR_LOG_ERROR);
		or_metrics_service("fuzz/\"svc\"\n");
	}
	a.loop = loop;
	a.hooks = hooks;
	a.lis[0].a = a.lis[1].a = &a;
	a.lis[0].metrics = true;
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
	c = client_new(&a, &a.lis[metrics_port ? 0 : 1], sv[0]);
	CHECK(c);

	/* Feed in chunks, as a slow client would; the server stops reading once it answers. */
	for (off = 0; off < size && !c->closed && c->state == C_READING; off += chunk) {
		size_t n = size - off < chunk ? size - off : chunk;

		CHECK(send(sv[1], data + off, n, MSG_NOSIGNAL) == (ssize_t)n);
		on_client(loop, &c->io, EV_READ);
	}
	consumed = c->in_len;
	if (eof) {
		shutdown(sv[1], SHUT_WR);
		for (int i = 0; i < 3 && !c->closed && c->state == C_READING; i++)
			on_client(loop, &c->io, EV_READ);
	}
	/* The socket pair's buffer holds any answer we make: it is all written now. */
	CHECK(c->closed || c->state != C_WRITING);

	rsp = malloc(1 << 16);
	CHECK(rsp);
	for (;;) {
		ssize_t n = recv(sv[1], rsp + rlen, (1 << 16) - rlen, 0);

		if (n <= 0)
			break;
		rlen += n;
		CHECK(rlen < (1 << 16));
	}
	/* The server answered on what it had read so far, which parses the same way. */
	want = want_status(c->in, consumed, metrics_port, eof, &head_only);
	check_response(rsp, rlen, want, head_only);
	free(rsp);

	/* The client goes away: a lingering server drains what is left, sees EOF, closes. */
	close(sv[1]);
	if (!c->closed && c->state == C_READING)
		client_close(c); /* what the deadline would do */
	for (int i = 0; i < 64 && !c->closed; i++)
		on_client(loop, &c->io, EV_READ);
	CHECK(c->closed);
	ev_run_deferred(loop);
	CHECK(!a.clients && !a.lis[0].n_clients && !a.lis[1].n_clients);
	return 0;
}
