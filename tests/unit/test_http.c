// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* HTTP/1.1 framing: heads, bodies, message boundaries, smuggling defences. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "http.h"

struct framed {
	int head_rc;
	const char *why;
	size_t head_len;
	ssize_t body_len;
	bool complete;
	bool keep_alive;
	size_t rest;
};

/* Frames the first message of `s` (len bytes) the way the proxy does. */
static struct framed frame(enum http_parser_type type, const char *s, size_t len, int method,
			   bool eof)
{
	struct or_http_msg m;
	struct framed f = { 0 };

	or_http_msg_init(&m, type, method);
	f.head_len = or_http_head_end(s, len);
	if (!f.head_len) {
		f.head_rc = 1;
		return f;
	}
	f.head_rc = or_http_msg_head(&m, s, f.head_len);
	f.why = m.why;
	if (f.head_rc)
		return f;
	f.body_len = m.complete ? 0 : or_http_msg_body(&m, s + f.head_len, len - f.head_len);
	if (f.body_len >= 0 && eof && !m.complete)
		f.body_len = or_http_msg_body(&m, NULL, 0) < 0 ? -1 : f.body_len;
	f.why = m.why;
	f.complete = m.complete;
	f.keep_alive = or_http_keep_alive(&m);
	if (f.body_len >= 0)
		f.rest = len - f.head_len - f.body_len;
	return f;
}

#define REQ(lit) frame(HTTP_REQUEST, lit, sizeof(lit) - 1, 0, false)

Test(http, get_then_pipelined_request_stays_for_later)
{
	struct framed f = REQ("GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\n\r\n");

	cr_assert_eq(f.head_rc, 0);
	cr_assert(f.complete);
	cr_assert(f.keep_alive);
	cr_assert_eq(f.rest, strlen("GET /2 HTTP/1.1\r\n\r\n"));
}

Test(http, content_length_body_ends_exactly)
{
	struct framed f = REQ("POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\n\r\n");

	cr_assert_eq(f.head_rc, 0);
	cr_assert_eq(f.body_len, 5);
	cr_assert(f.complete);
	cr_assert_eq(f.rest, strlen("GET / HTTP/1.1\r\n\r\n"));
}

Test(http, chunked_body_ends_after_last_chunk)
{
	struct framed f = REQ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
			      "5\r\nhello\r\n0\r\n\r\nNEXT");

	cr_assert_eq(f.head_rc, 0);
	cr_assert(f.complete);
	cr_assert_eq(f.rest, 4);
}

Test(http, http10_is_not_keep_alive)
{
	struct framed f = REQ("GET / HTTP/1.0\r\n\r\n");

	cr_assert_eq(f.head_rc, 0);
	cr_assert_not(f.keep_alive);
}

Test(http, incomplete_head_waits)
{
	struct framed f = REQ("GET / HTTP/1.1\r\nHost: x\r\n");

	cr_assert_eq(f.head_rc, 1);
}

/* Smuggling and malformed input: every one must be refused. */
static void refused(const char *s, size_t len, const char *fragment)
{
	struct framed f = frame(HTTP_REQUEST, s, len, 0, false);

	cr_assert(f.head_rc == -1 || f.body_len < 0, "accepted: %.*s", (int)len, s);
	if (fragment)
		cr_assert(f.why && strstr(f.why, fragment), "why=%s, wanted %s", f.why, fragment);
}
#define REFUSED(lit, frag) refused(lit, sizeof(lit) - 1, frag)

Test(http, content_length_with_transfer_encoding)
{
	REFUSED("POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		NULL);
	REFUSED("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
		NULL);
}

Test(http, two_content_lengths)
{
	REFUSED("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", NULL);
	REFUSED("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello", NULL);
}

Test(http, bad_chunk_sizes)
{
	REFUSED("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
		"chunk");
	REFUSED("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n",
		"chunk");
	REFUSED("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
		"ffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
		NULL);
}

Test(http, transfer_encoding_not_ending_in_chunked)
{
	REFUSED("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\nabc", NULL);
	REFUSED("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\nabc", NULL);
}

Test(http, obs_fold)
{
	REFUSED("GET / HTTP/1.1\r\nX-A: a\r\n b\r\n\r\n", "obs-fold");
	REFUSED("GET / HTTP/1.1\r\nX-A: a\r\n\tb\r\n\r\n", "obs-fold");
}

Test(http, nul_and_bare_cr_lf)
{
	REFUSED("GET / HTTP/1.1\r\nX-A: a\0b\r\n\r\n", "NUL");
	REFUSED("GET / HTTP/1.1\r\nX-A: a\rb\r\n\r\n", "bare CR");
	REFUSED("GET / HTTP/1.1\nX-A: ab\r\n\r\n", "bare LF");
}

Test(http, too_many_headers)
{
	char buf[4096];
	size_t len = snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\n");

	for (int i = 0; i < OR_HTTP_MAX_HEADERS + 1; i++)
		len += snprintf(buf + len, sizeof(buf) - len, "X-%d: v\r\n", i);
	len += snprintf(buf + len, sizeof(buf) - len, "\r\n");
	refused(buf, len, "too many headers");
}

Test(http, expect_continue_is_noticed)
{
	static const char s[] = "PUT / HTTP/1.1\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n";
	struct or_http_msg m;

	or_http_msg_init(&m, HTTP_REQUEST, 0);
	cr_assert_eq(or_http_msg_head(&m, s, sizeof(s) - 1), 0);
	cr_assert(m.expect_continue);
	cr_assert_not(m.complete);
}

Test(http, response_to_head_has_no_body)
{
	static const char s[] = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n";
	struct framed f = frame(HTTP_RESPONSE, s, sizeof(s) - 1, HTTP_HEAD, false);

	cr_assert_eq(f.head_rc, 0);
	cr_assert(f.complete);
}

Test(http, interim_100_is_its_own_message)
{
	static const char s[] = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n";
	struct framed f = frame(HTTP_RESPONSE, s, sizeof(s) - 1, HTTP_GET, false);

	cr_assert_eq(f.head_rc, 0);
	cr_assert(f.complete);
	cr_assert_eq(f.rest, strlen("HTTP/1.1 200 OK\r\n\r\n"));
}

Test(http, response_until_close_ends_at_eof)
{
	static const char s[] = "HTTP/1.1 200 OK\r\n\r\nabc";
	struct framed f = frame(HTTP_RESPONSE, s, sizeof(s) - 1, HTTP_GET, true);

	cr_assert_eq(f.head_rc, 0);
	cr_assert_eq(f.body_len, 3);
	cr_assert(f.complete);
	cr_assert_not(f.keep_alive);
}

Test(http, response_cut_mid_body_is_an_error)
{
	static const char s[] = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc";
	struct framed f = frame(HTTP_RESPONSE, s, sizeof(s) - 1, HTTP_GET, true);

	cr_assert_eq(f.head_rc, 0);
	cr_assert_lt(f.body_len, 0);
}

/* The last answer of a draining connection: its own Connection headers out, close in. */
Test(http, head_set_close)
{
	static const char s[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n"
				"Keep-Alive: timeout=5\r\nX-Connection-Id: 7\r\n"
				"proxy-connection: x\r\n\r\n";
	static const char want[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Connection-Id: 7\r\n"
				   "connection: close\r\n\r\n";
	char out[256];
	size_t n = or_http_head_set_close(s, sizeof(s) - 1, out, sizeof(out));
	struct framed f;

	cr_assert_eq(n, sizeof(want) - 1, "%zu: %.*s", n, (int)n, out);
	cr_expect_eq(memcmp(out, want, n), 0, "%.*s", (int)n, out);
	f = frame(HTTP_RESPONSE, out, n, HTTP_GET, true);
	cr_expect_eq(f.head_rc, 0);
	cr_expect_not(f.keep_alive);
}

Test(http, head_set_close_bounds)
{
	static const char bare[] = "HTTP/1.1 204 No Content\r\n\r\n";
	char out[64];
	size_t n;

	/* The most it grows: a head without Connection headers. */
	n = or_http_head_set_close(bare, sizeof(bare) - 1, out, sizeof(out));
	cr_expect_eq(n, sizeof(bare) - 1 + OR_HTTP_CLOSE_GROWTH);
	cr_expect_eq(memcmp(out + n - 21, "connection: close\r\n\r\n", 21), 0);
	/* Too small an out, or not a whole head: 0, and nothing written past cap. */
	memset(out, 'z', sizeof(out));
	cr_expect_eq(or_http_head_set_close(bare, sizeof(bare) - 1, out, 30), 0);
	cr_expect_eq(out[30], 'z');
	cr_expect_eq(or_http_head_set_close(bare, sizeof(bare) - 3, out, sizeof(out)), 0);
	cr_expect_eq(or_http_head_set_close("\r\n", 2, out, sizeof(out)), 0);
}
