// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The tunnel's HTTP/1.1 CONNECT framing: what the server accepts as a
 * request head, what the client accepts as an answer, and that both build
 * what the other parses. Peers' bytes: every malformed head is OR_TP_BAD.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tunnel_proto.h"

static const struct or_tunnel_framing *fr = &or_tunnel_http1;

static const char *ip_str(const struct or_ip *ip)
{
	static char buf[OR_IP_STRLEN];

	return or_ip_str(ip, buf, sizeof(buf));
}

/* Parses s (len bytes, which may hold NULs); *why is never left NULL on BAD. */
static enum or_tunnel_parse req(const char *s, size_t len, struct or_tunnel_target *t,
				size_t *consumed, const char **why)
{
	*why = NULL;
	return fr->parse_request(s, len, t, consumed, why);
}

#define REQ_LIT(lit, t, c, w) req(lit, sizeof(lit) - 1, t, c, w)

struct good_req {
	const char *in;
	const char *ip;
	int family;
	uint16_t port;
};

static const struct good_req good_reqs[] = {
	{ "CONNECT 10.244.2.5:8080 HTTP/1.1\r\nHost: 10.244.2.5:8080\r\n\r\n", "10.244.2.5",
	  AF_INET, 8080 },
	{ "CONNECT 10.0.0.1:1 HTTP/1.1\r\n\r\n", "10.0.0.1", AF_INET, 1 },
	{ "CONNECT 255.255.255.255:65535 HTTP/1.1\r\n\r\n", "255.255.255.255", AF_INET, 65535 },
	{ "CONNECT 0.0.0.0:80 HTTP/1.1\r\n\r\n", "0.0.0.0", AF_INET, 80 },
	{ "CONNECT [fd00::5]:443 HTTP/1.1\r\nHost: [fd00::5]:443\r\n\r\n", "fd00::5", AF_INET6,
	  443 },
	{ "CONNECT [::1]:9 HTTP/1.1\r\n\r\n", "::1", AF_INET6, 9 },
	{ "CONNECT [::ffff:10.0.0.1]:80 HTTP/1.1\r\n\r\n", "::ffff:10.0.0.1", AF_INET6, 80 },
	{ "CONNECT [2001:DB8:0:0:0:0:0:1]:80 HTTP/1.1\r\n\r\n", "2001:db8::1", AF_INET6, 80 },
	/* Any headers, any values (tabs, obs-text, empty), any name case. */
	{ "CONNECT 10.0.0.1:80 HTTP/1.1\r\nhost: x\r\nX-Empty:\r\nX-Tab:\ta\tb \r\n"
	  "X-Obs: caf\xc3\xa9\r\nUser-Agent: outrider/1 (linux)\r\n\r\n",
	  "10.0.0.1", AF_INET, 80 },
	{ "CONNECT 10.0.0.1:80 HTTP/1.1\r\n!#$%&'*+-.^_`|~09azAZ: v\r\n\r\n", "10.0.0.1", AF_INET,
	  80 },
};

Test(tunnel_request, good_table)
{
	for (size_t i = 0; i < sizeof(good_reqs) / sizeof(good_reqs[0]); i++) {
		const struct good_req *g = &good_reqs[i];
		struct or_tunnel_target t = { 0 };
		size_t consumed = 0;
		const char *why;
		enum or_tunnel_parse r = req(g->in, strlen(g->in), &t, &consumed, &why);

		cr_assert_eq(r, OR_TP_OK, "[%zu] %s: %d (%s)", i, g->in, r, why);
		cr_expect_eq(consumed, strlen(g->in), "[%zu] consumed %zu", i, consumed);
		cr_expect_eq(t.ip.family, g->family, "[%zu] family", i);
		cr_expect_str_eq(ip_str(&t.ip), g->ip, "[%zu] ip %s", i, ip_str(&t.ip));
		cr_expect_eq(t.port, g->port, "[%zu] port %u", i, t.port);
	}
}

struct bad_req {
	const char *in;
	const char *why; /* a fragment of the reason */
};

static const struct bad_req bad_reqs[] = {
	/* Targets: IP literals with a port only. */
	{ "CONNECT echo.default.svc:80 HTTP/1.1\r\n\r\n", "not an IPv4 literal" },
	{ "CONNECT localhost:80 HTTP/1.1\r\n\r\n", "not an IPv4 literal" },
	{ "CONNECT [echo]:80 HTTP/1.1\r\n\r\n", "not an IPv6 literal" },
	{ "CONNECT 10.0.0.1 HTTP/1.1\r\n\r\n", "no port" },
	{ "CONNECT 10.0.0.1: HTTP/1.1\r\n\r\n", "port is not 1-65535" },
	{ "CONNECT [fd00::1] HTTP/1.1\r\n\r\n", "not IP:PORT" },
	{ "CONNECT [fd00::1]: HTTP/1.1\r\n\r\n", "port is not 1-65535" },
	{ "CONNECT fd00::1:80 HTTP/1.1\r\n\r\n", "not an IP" },
	{ "CONNECT [10.0.0.1]:80 HTTP/1.1\r\n\r\n", "not an IPv6 literal" },
	{ "CONNECT [fe80::1%eth0]:80 HTTP/1.1\r\n\r\n", "not an IPv6 literal" },
	{ "CONNECT [fe80::1%25eth0]:80 HTTP/1.1\r\n\r\n", "not an IPv6 literal" },
	{ "CONNECT 10.0.0.1:0 HTTP/1.1\r\n\r\n", "port is not 1-65535" },
	{ "CONNECT 10.0.0.1:65536 HTTP/1.1\r\n\r\n", "port is not 1-65535" },
	{ "CONNECT 10.0.0.1:99999 HTTP/1.1\r\n\r\n", "port is not 1-65535" },
	{ "CONNECT 10.0.0.1:123456 HTTP/1.1\r\n\r\n", "port is not 1-65535" },
	{ "CONNECT 10.0.0.1:080 HTTP/1.1\r\n\r\n", "port is not 1-65535" },
	{ "CONNECT 10.0.0.1:00 HTTP/1.1\r\n\r\n", "port is not 1-65535" },
	{ "CONNECT 10.0.0.1:+80 HTTP/1.1\r\n\r\n", "port is not 1-65535" },
	{ "CONNECT 10.0.0.1:-1 HTTP/1.1\r\n\r\n", "port is not 1-65535" },
	{ "CONNECT 10.0.0.1:8x HTTP/1.1\r\n\r\n", "port is not 1-65535" },
	{ "CONNECT 10.0.0.1:80:81 HTTP/1.1\r\n\r\n", "port is not 1-65535" },
	{ "CONNECT 10.0.0.01:80 HTTP/1.1\r\n\r\n", "not an IPv4 literal" },
	{ "CONNECT 10.0.0.256:80 HTTP/1.1\r\n\r\n", "not an IPv4 literal" },
	{ "CONNECT 10.1:80 HTTP/1.1\r\n\r\n", "not an IPv4 literal" },
	{ "CONNECT 0x0a000001:80 HTTP/1.1\r\n\r\n", "not an IPv4 literal" },
	{ "CONNECT :80 HTTP/1.1\r\n\r\n", "not an IP" },
	{ "CONNECT  HTTP/1.1\r\n\r\n", "no port" },
	/* Absolute-form, origin-form, asterisk-form. */
	{ "CONNECT http://10.0.0.1:80/ HTTP/1.1\r\n\r\n", "not an IPv4 literal" },
	{ "CONNECT / HTTP/1.1\r\n\r\n", "no port" },
	{ "CONNECT * HTTP/1.1\r\n\r\n", "no port" },
	/* Methods, versions, spacing. */
	{ "GET / HTTP/1.1\r\nHost: x\r\n\r\n", "not a CONNECT request" },
	{ "connect 10.0.0.1:80 HTTP/1.1\r\n\r\n", "not a CONNECT request" },
	{ "POST 10.0.0.1:80 HTTP/1.1\r\n\r\n", "not a CONNECT request" },
	{ "CONNECTX 10.0.0.1:80 HTTP/1.1\r\n\r\n", "not a CONNECT request" },
	{ "CONNECT 10.0.0.1:80 HTTP/1.0\r\n\r\n", "not HTTP/1.1" },
	{ "CONNECT 10.0.0.1:80 HTTP/2.0\r\n\r\n", "not HTTP/1.1" },
	{ "CONNECT 10.0.0.1:80 http/1.1\r\n\r\n", "not HTTP/1.1" },
	{ "CONNECT 10.0.0.1:80\r\n\r\n", "no HTTP version" },
	{ "CONNECT 10.0.0.1:80 HTTP/1.1 \r\n\r\n", "not HTTP/1.1" },
	{ "CONNECT  10.0.0.1:80 HTTP/1.1\r\n\r\n", "not HTTP/1.1" },
	{ "CONNECT 10.0.0.1:80  HTTP/1.1\r\n\r\n", "not HTTP/1.1" },
	{ "CONNECT\t10.0.0.1:80 HTTP/1.1\r\n\r\n", "not a CONNECT request" },
	{ " CONNECT 10.0.0.1:80 HTTP/1.1\r\n\r\n", "not a CONNECT request" },
	{ "\r\nCONNECT 10.0.0.1:80 HTTP/1.1\r\n\r\n", "not a CONNECT request" },
	{ "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "not a CONNECT request" },
	/* Line ends and bytes. */
	{ "CONNECT 10.0.0.1:80 HTTP/1.1\n\n", "bare LF" },
	{ "CONNECT 10.0.0.1:80 HTTP/1.1\r\n\n", "bare LF" },
	{ "CONNECT 10.0.0.1:80 HTTP/1.1\r\nHost: x\n\r\n", "bare LF" },
	{ "CONNECT 10.0.0.1:80 HTTP/1.1\r\nHost: x\rY\r\n\r\n", "bare CR" },
	{ "CONNECT 10.0.0.1:80 HTTP/1.1\r\r\n\r\n", "bare CR" },
	{ "CONNECT 10.0.0.1:80 HTTP/1.1\r\nX: \x01\r\n\r\n", "control character" },
	{ "CONNECT 10.0.0.1:80 HTTP/1.1\r\nX: \x7f\r\n\r\n", "control character" },
	{ "CONNECT 10.0.0.1:80 HTTP/1.1\r\nX: \x1b[31m\r\n\r\n", "control character" },
	/* Header fields. */
	{ "CONNECT 10.0.0.1:80 HTTP/1.1\r\nHost: x\r\n  folded\r\n\r\n", "obs-fold" },
	{ "CONNECT 10.0.0.1:80 HTTP/1.1\r\nHost: x\r\n\tfolded\r\n\r\n", "obs-fold" },
	{ "CONNECT 10.0.0.1:80 HTTP/1.1\r\n Host: x\r\n\r\n", "obs-fold" },
	{ "CONNECT 10.0.0.1:80 HTTP/1.1\r\nHost : x\r\n\r\n", "malformed header" },
	{ "CONNECT 10.0.0.1:80 HTTP/1.1\r\nHost\t: x\r\n\r\n", "malformed header" },
	{ "CONNECT 10.0.0.1:80 HTTP/1.1\r\n: x\r\n\r\n", "malformed header" },
	{ "CONNECT 10.0.0.1:80 HTTP/1.1\r\nno-colon\r\n\r\n", "malformed header" },
	{ "CONNECT 10.0.0.1:80 HTTP/1.1\r\nX(y): z\r\n\r\n", "malformed header" },
	{ "CONNECT 10.0.0.1:80 HTTP/1.1\r\nX\xc3\xa9: z\r\n\r\n", "malformed header" },
	/* Junk. */
	{ "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", "control character" },
	{ "SSH-2.0-OpenSSH_9.6\r\n", "not a CONNECT request" },
	{ "\xff\xfe\xfd", "not a CONNECT request" },
};

Test(tunnel_request, bad_table)
{
	for (size_t i = 0; i < sizeof(bad_reqs) / sizeof(bad_reqs[0]); i++) {
		const struct bad_req *b = &bad_reqs[i];
		struct or_tunnel_target t = { .port = 7 };
		size_t consumed = 77;
		const char *why;
		enum or_tunnel_parse r = req(b->in, strlen(b->in), &t, &consumed, &why);

		cr_assert_eq(r, OR_TP_BAD, "[%zu] %s: expected BAD, got %d", i, b->in, r);
		cr_assert_not_null(why, "[%zu] BAD without a reason", i);
		cr_expect(strstr(why, b->why) != NULL, "[%zu] %s: reason '%s' should mention '%s'",
			  i, b->in, why, b->why);
		cr_expect_eq(consumed, 77, "[%zu] consumed written on BAD", i);
		cr_expect_eq(t.port, 7, "[%zu] target written on BAD", i);
	}
}

Test(tunnel_request, nul_bytes)
{
	static const char in1[] = "CONNECT 10.0.0.1:80 HTTP/1.1\r\nX: a\0b\r\n\r\n";
	static const char in2[] = "CONNECT 10.0.0.1\0:80 HTTP/1.1\r\n\r\n";
	static const char in3[] = "CONN\0";
	struct or_tunnel_target t;
	size_t consumed;
	const char *why;

	cr_expect_eq(REQ_LIT(in1, &t, &consumed, &why), OR_TP_BAD);
	cr_expect_str_eq(why, "NUL byte");
	cr_expect_eq(REQ_LIT(in2, &t, &consumed, &why), OR_TP_BAD);
	cr_expect_str_eq(why, "NUL byte");
	cr_expect_eq(REQ_LIT(in3, &t, &consumed, &why), OR_TP_BAD, "refused before the line ends");
}

Test(tunnel_request, bytes_after_the_head_stay_with_the_caller)
{
	static const char in[] = "CONNECT 10.0.0.1:80 HTTP/1.1\r\nHost: 10.0.0.1:80\r\n\r\n"
				 "GET / HTTP/1.1\r\n\r\n\0\xff";
	struct or_tunnel_target t;
	size_t consumed = 0;
	const char *why;

	cr_assert_eq(REQ_LIT(in, &t, &consumed, &why), OR_TP_OK, "%s", why);
	cr_expect_eq(consumed, strlen("CONNECT 10.0.0.1:80 HTTP/1.1\r\nHost: 10.0.0.1:80\r\n\r\n"));
	cr_expect_eq(t.port, 80);
}

Test(tunnel_request, every_split_is_incomplete_then_ok)
{
	static const char in[] = "CONNECT [fd00::2]:8443 HTTP/1.1\r\nHost: [fd00::2]:8443\r\n"
				 "X-Trace: 1\r\n\r\n";
	const size_t len = sizeof(in) - 1;

	for (size_t n = 0; n < len; n++) {
		struct or_tunnel_target t = { 0 };
		size_t consumed = 0;
		const char *why;
		/* An exact-size copy: ASan sees any read past what arrived. */
		char *part = malloc(n ? n : 1);

		cr_assert_not_null(part);
		memcpy(part, in, n);
		cr_expect_eq(req(part, n, &t, &consumed, &why), OR_TP_INCOMPLETE,
			     "%zu of %zu bytes: %s", n, len, why ? why : "");
		free(part);
	}

	struct or_tunnel_target t = { 0 };
	size_t consumed = 0;
	const char *why;

	cr_assert_eq(REQ_LIT(in, &t, &consumed, &why), OR_TP_OK);
	cr_expect_eq(consumed, len);
	cr_expect_str_eq(ip_str(&t.ip), "fd00::2");
	cr_expect_eq(t.port, 8443);
}

Test(tunnel_request, a_wrong_start_is_refused_early)
{
	struct or_tunnel_target t;
	size_t consumed;
	const char *why;

	cr_expect_eq(REQ_LIT("G", &t, &consumed, &why), OR_TP_BAD);
	cr_expect_eq(REQ_LIT("CONNECT", &t, &consumed, &why), OR_TP_INCOMPLETE);
	cr_expect_eq(REQ_LIT("CONNECTX", &t, &consumed, &why), OR_TP_BAD);
	cr_expect_eq(REQ_LIT("CONNECT 10.0.0.1:80 HTTP/1.1\r\nX: y\n", &t, &consumed, &why),
		     OR_TP_BAD, "a bare LF is refused without waiting for the head");
	cr_expect_eq(REQ_LIT("CONNECT 10.0.0.1:80 HTTP/1.1\r\n ", &t, &consumed, &why), OR_TP_BAD,
		     "obs-fold is refused as soon as it starts");
	cr_expect_eq(REQ_LIT("CONNECT 10.0.0.1:80 HTTP/1.0\r\n", &t, &consumed, &why), OR_TP_BAD,
		     "a complete bad request line is refused before the head ends");
	cr_expect_eq(REQ_LIT("CONNECT 10.0.0.1:80 HTTP/1.1\r", &t, &consumed, &why),
		     OR_TP_INCOMPLETE);
	cr_expect_eq(REQ_LIT("", &t, &consumed, &why), OR_TP_INCOMPLETE);
}

/* A request whose head is `total` bytes, padded with one long header. */
static char *sized_head(size_t total)
{
	static const char start[] = "CONNECT 10.0.0.1:80 HTTP/1.1\r\nX-Pad: ";
	char *buf = malloc(total + 1);
	size_t pad = total - (sizeof(start) - 1) - 4;

	cr_assert_not_null(buf);
	memcpy(buf, start, sizeof(start) - 1);
	memset(buf + sizeof(start) - 1, 'a', pad);
	memcpy(buf + total - 4, "\r\n\r\n", 4);
	buf[total] = '\0';
	return buf;
}

Test(tunnel_request, head_size_limit)
{
	struct or_tunnel_target t;
	size_t consumed = 0;
	const char *why;
	char *buf, *more;

	buf = sized_head(OR_TUNNEL_MAX_HEAD);
	cr_expect_eq(req(buf, OR_TUNNEL_MAX_HEAD, &t, &consumed, &why), OR_TP_OK,
		     "exactly OR_TUNNEL_MAX_HEAD fits: %s", why ? why : "");
	cr_expect_eq(consumed, OR_TUNNEL_MAX_HEAD);
	free(buf);

	buf = sized_head(OR_TUNNEL_MAX_HEAD + 1);
	cr_expect_eq(req(buf, OR_TUNNEL_MAX_HEAD + 1, &t, &consumed, &why), OR_TP_BAD);
	cr_expect(strstr(why, "longer than") != NULL, "%s", why);
	cr_expect_eq(req(buf, OR_TUNNEL_MAX_HEAD - 1, &t, &consumed, &why), OR_TP_INCOMPLETE,
		     "fewer than OR_TUNNEL_MAX_HEAD bytes: wait");
	cr_expect_eq(req(buf, OR_TUNNEL_MAX_HEAD, &t, &consumed, &why), OR_TP_BAD,
		     "OR_TUNNEL_MAX_HEAD bytes and no end: refuse");
	free(buf);

	/* Far more than the limit, and never an end. */
	more = malloc(1 << 20);
	cr_assert_not_null(more);
	memcpy(more, "CONNECT 10.0.0.1:80 HTTP/1.1\r\n", 30);
	memset(more + 30, 'x', (1 << 20) - 30);
	cr_expect_eq(req(more, 1 << 20, &t, &consumed, &why), OR_TP_BAD);
	free(more);
}

Test(tunnel_request, header_count_limit)
{
	char buf[2048];
	struct or_tunnel_target t;
	size_t consumed, o;
	const char *why;
	int n;

	for (n = 31; n <= 33; n++) {
		o = (size_t)snprintf(buf, sizeof(buf), "CONNECT 10.0.0.1:80 HTTP/1.1\r\n");
		for (int i = 0; i < n; i++)
			o += (size_t)snprintf(buf + o, sizeof(buf) - o, "X-%d: v\r\n", i);
		o += (size_t)snprintf(buf + o, sizeof(buf) - o, "\r\n");
		cr_expect_eq(req(buf, o, &t, &consumed, &why), n <= 32 ? OR_TP_OK : OR_TP_BAD,
			     "%d headers", n);
	}
	cr_expect(strstr(why, "more than 32") != NULL, "%s", why);
}

Test(tunnel_request, null_why_is_allowed)
{
	struct or_tunnel_target t;
	size_t consumed;

	cr_expect_eq(fr->parse_request("GET / HTTP/1.1\r\n\r\n", 18, &t, &consumed, NULL),
		     OR_TP_BAD);
}

Test(tunnel_request, build_round_trips)
{
	static const char *const ips[] = { "10.244.2.5", "0.0.0.0", "255.255.255.255", "::",
					   "fd00::10", "2001:db8:1:2:3:4:5:6", "::ffff:1.2.3.4" };
	static const uint16_t ports[] = { 1, 80, 8080, 65535 };
	char buf[256];

	for (size_t i = 0; i < sizeof(ips) / sizeof(ips[0]); i++) {
		for (size_t j = 0; j < sizeof(ports) / sizeof(ports[0]); j++) {
			struct or_tunnel_target in = { .port = ports[j] }, out = { 0 };
			size_t consumed = 0;
			const char *why;
			int n;

			cr_assert_eq(or_ip_parse(ips[i], &in.ip), 0);
			n = fr->build_request(&in, buf, sizeof(buf));
			cr_assert_gt(n, 0, "%s %u: %d", ips[i], ports[j], n);
			cr_expect_eq((size_t)n, strlen(buf));
			cr_assert_eq(req(buf, (size_t)n, &out, &consumed, &why), OR_TP_OK, "%s: %s",
				     buf, why);
			cr_expect_eq(consumed, (size_t)n);
			cr_expect(or_ip_eq(&in.ip, &out.ip), "%s", buf);
			cr_expect_eq(in.port, out.port);
		}
	}
}

Test(tunnel_request, build_is_the_documented_form)
{
	struct or_tunnel_target t = { .port = 8080 };
	char buf[128];
	int n;

	cr_assert_eq(or_ip_parse("10.244.2.5", &t.ip), 0);
	n = fr->build_request(&t, buf, sizeof(buf));
	cr_expect_str_eq(buf, "CONNECT 10.244.2.5:8080 HTTP/1.1\r\nHost: 10.244.2.5:8080\r\n\r\n");
	cr_expect_eq(n, (int)strlen(buf));

	cr_assert_eq(or_ip_parse("fd00::5", &t.ip), 0);
	t.port = 443;
	fr->build_request(&t, buf, sizeof(buf));
	cr_expect_str_eq(buf, "CONNECT [fd00::5]:443 HTTP/1.1\r\nHost: [fd00::5]:443\r\n\r\n");
}

Test(tunnel_request, build_errors)
{
	struct or_tunnel_target t = { .port = 80 };
	char buf[128];
	size_t need;

	cr_assert_eq(or_ip_parse("10.0.0.1", &t.ip), 0);
	need = strlen("CONNECT 10.0.0.1:80 HTTP/1.1\r\nHost: 10.0.0.1:80\r\n\r\n");
	cr_expect_eq(fr->build_request(&t, buf, need), -ENOSPC, "no room for the NUL");
	cr_expect_eq(fr->build_request(&t, buf, need + 1), (int)need);
	cr_expect_eq(fr->build_request(&t, buf, 0), -ENOSPC);
	t.port = 0;
	cr_expect_eq(fr->build_request(&t, buf, sizeof(buf)), -EINVAL, "port 0");
	t.port = 80;
	t.ip.family = 0;
	cr_expect_eq(fr->build_request(&t, buf, sizeof(buf)), -EINVAL, "no address");
}

/* ---- responses --------------------------------------------------------- */

Test(tunnel_response, build_each_status)
{
	static const struct {
		int status;
		const char *text;
	} want[] = {
		{ 200, "HTTP/1.1 200 OK\r\n\r\n" },
		{ 400, "HTTP/1.1 400 Bad Request\r\n\r\n" },
		{ 403, "HTTP/1.1 403 Forbidden\r\n\r\n" },
		{ 502, "HTTP/1.1 502 Bad Gateway\r\n\r\n" },
		{ 503, "HTTP/1.1 503 Service Unavailable\r\n\r\n" },
	};
	char buf[64];

	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		int status = 0, n = fr->build_response(want[i].status, buf, sizeof(buf));
		size_t consumed = 0;

		cr_expect_eq(n, (int)strlen(want[i].text), "%d", want[i].status);
		cr_expect_str_eq(buf, want[i].text);
		cr_expect_eq(fr->parse_response(buf, (size_t)n, &status, &consumed), OR_TP_OK);
		cr_expect_eq(status, want[i].status);
		cr_expect_eq(consumed, (size_t)n);
	}
	cr_expect_eq(fr->build_response(404, buf, sizeof(buf)), -EINVAL);
	cr_expect_eq(fr->build_response(0, buf, sizeof(buf)), -EINVAL);
	cr_expect_eq(fr->build_response(200, buf, 19), -ENOSPC);
	cr_expect_eq(fr->build_response(200, buf, 20), 19);
}

struct resp_case {
	const char *in;
	enum or_tunnel_parse want;
	int status;
};

static const struct resp_case resp_cases[] = {
	{ "HTTP/1.1 200 OK\r\n\r\n", OR_TP_OK, 200 },
	{ "HTTP/1.1 200 \r\n\r\n", OR_TP_OK, 200 },
	{ "HTTP/1.1 403 Forbidden\r\nServer: ztunnel\r\nX: y\r\n\r\n", OR_TP_OK, 403 },
	{ "HTTP/1.1 100 Continue\r\n\r\n", OR_TP_OK, 100 },
	{ "HTTP/1.1 599 Whatever it says\r\n\r\n", OR_TP_OK, 599 },
	{ "HTTP/1.1 200 OK\r\n", OR_TP_INCOMPLETE, 0 },
	{ "HTTP/1.1 200 OK\r\n\r", OR_TP_INCOMPLETE, 0 },
	{ "HTTP/1.", OR_TP_INCOMPLETE, 0 },
	{ "", OR_TP_INCOMPLETE, 0 },
	{ "HTTP/1.1 200\r\n\r\n", OR_TP_BAD, 0 },
	{ "HTTP/1.1 20 OK\r\n\r\n", OR_TP_BAD, 0 },
	{ "HTTP/1.1 2000 OK\r\n\r\n", OR_TP_BAD, 0 },
	{ "HTTP/1.1 099 X\r\n\r\n", OR_TP_BAD, 0 },
	{ "HTTP/1.1 600 X\r\n\r\n", OR_TP_BAD, 0 },
	{ "HTTP/1.1 +20 X\r\n\r\n", OR_TP_BAD, 0 },
	{ "HTTP/1.1  200 OK\r\n\r\n", OR_TP_BAD, 0 },
	{ "HTTP/1.0 200 OK\r\n\r\n", OR_TP_BAD, 0 },
	{ "HTTP/2 200\r\n\r\n", OR_TP_BAD, 0 },
	{ "http/1.1 200 OK\r\n\r\n", OR_TP_BAD, 0 },
	{ "HTTP/1.1 200 OK\n\n", OR_TP_BAD, 0 },
	{ "HTTP/1.1 200 OK\r\nX: y\n\r\n", OR_TP_BAD, 0 },
	{ "HTTP/1.1 200 OK\r\n folded\r\n\r\n", OR_TP_BAD, 0 },
	{ "HTTP/1.1 200 OK\r\nX : y\r\n\r\n", OR_TP_BAD, 0 },
	{ "HTTP/1.1 200 O\x01K\r\n\r\n", OR_TP_BAD, 0 },
	{ "GET / HTTP/1.1\r\n\r\n", OR_TP_BAD, 0 },
	{ "X", OR_TP_BAD, 0 },
};

Test(tunnel_response, table)
{
	for (size_t i = 0; i < sizeof(resp_cases) / sizeof(resp_cases[0]); i++) {
		const struct resp_case *rc = &resp_cases[i];
		int status = -1;
		size_t consumed = 0;
		enum or_tunnel_parse r = fr->parse_response(rc->in, strlen(rc->in), &status,
							    &consumed);

		cr_expect_eq(r, rc->want, "[%zu] %s: %d, expected %d", i, rc->in, r, rc->want);
		if (r == OR_TP_OK && rc->want == OR_TP_OK) {
			cr_expect_eq(status, rc->status, "[%zu] status %d", i, status);
			cr_expect_eq(consumed, strlen(rc->in), "[%zu]", i);
		} else {
			cr_expect_eq(status, -1, "[%zu] status written when not OK", i);
		}
	}
}

Test(tunnel_response, split_and_trailing_stream)
{
	static const char in[] = "HTTP/1.1 200 OK\r\nX: y\r\n\r\n\x16\x03\x03stream";
	const size_t head = strlen("HTTP/1.1 200 OK\r\nX: y\r\n\r\n");
	int status;
	size_t consumed;

	for (size_t n = 0; n < head; n++)
		cr_expect_eq(fr->parse_response(in, n, &status, &consumed), OR_TP_INCOMPLETE,
			     "%zu bytes", n);
	cr_expect_eq(fr->parse_response(in, sizeof(in) - 1, &status, &consumed), OR_TP_OK);
	cr_expect_eq(consumed, head);
	cr_expect_eq(status, 200);
}

Test(tunnel_response, size_limit)
{
	char *buf = malloc(OR_TUNNEL_MAX_HEAD + 16);
	int status;
	size_t consumed;

	cr_assert_not_null(buf);
	memcpy(buf, "HTTP/1.1 200 ", 13);
	memset(buf + 13, 'a', OR_TUNNEL_MAX_HEAD + 16 - 13);
	cr_expect_eq(fr->parse_response(buf, OR_TUNNEL_MAX_HEAD - 1, &status, &consumed),
		     OR_TP_INCOMPLETE);
	cr_expect_eq(fr->parse_response(buf, OR_TUNNEL_MAX_HEAD + 16, &status, &consumed),
		     OR_TP_BAD);
	free(buf);
}

Test(tunnel, framing_has_a_name)
{
	cr_expect_str_eq(or_tunnel_http1.name, "http1-connect");
	cr_expect_not_null(or_tunnel_http1.build_request);
	cr_expect_not_null(or_tunnel_http1.parse_request);
	cr_expect_not_null(or_tunnel_http1.build_response);
	cr_expect_not_null(or_tunnel_http1.parse_response);
}
