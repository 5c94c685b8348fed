// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * libFuzzer target for the HTTP/1.1 framing the proxy runs on untrusted
 * bytes, both directions. The first byte picks request or response (and
 * HEAD), the second how the rest is split into reads; the rest is the
 * stream. Messages are framed one after another as the proxy does, and
 * the framing must never claim more bytes than it was given. Every head
 * that parses is also rewritten as a draining agent's last answer
 * ("connection: close"), which must parse again, say close, and fit.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

/* The head rewritten with "connection: close" is a head again, and not keep-alive. */
static void check_set_close(enum http_parser_type type, int method, const char *head, size_t h)
{
	char *out = malloc(h + OR_HTTP_CLOSE_GROWTH);
	struct or_http_msg m;
	size_t n;

	if (!out)
		return;
	n = or_http_head_set_close(head, h, out, h + OR_HTTP_CLOSE_GROWTH);
	if (!n || n > h + OR_HTTP_CLOSE_GROWTH)
		abort(); /* a checked head always has room for it */
	or_http_msg_init(&m, type, method);
	if (or_http_head_end(out, n) != n)
		abort();
	/* One header more than a full head had is fine for the app, not for our own limit. */
	if (or_http_msg_head(&m, out, n)) {
		if (strcmp(m.why, "too many headers") != 0)
			abort();
	} else if (or_http_keep_alive(&m)) {
		abort();
	}
	free(out);
}

static void frame_stream(enum http_parser_type type, int method, const uint8_t *data,
			 size_t size, size_t chunk)
{
	const char *s = (const char *)data;
	size_t pos = 0;

	for (int msgs = 0; msgs < 64 && pos < size; msgs++) {
		struct or_http_msg m;
		size_t avail = size - pos, h, fed = 0;

		or_http_msg_init(&m, type, method);
		h = or_http_head_end(s + pos, avail < OR_HTTP_MAX_HEAD ? avail : OR_HTTP_MAX_HEAD);
		if (!h)
			return;
		if (or_http_msg_head(&m, s + pos, h))
			return;
		if (m.n_hdr > OR_HTTP_MAX_HEADERS)
			abort();
		for (size_t i = 0; i < m.n_hdr; i++)
			if (m.hdr[i].name < s || m.hdr[i].name + m.hdr[i].name_len > s + pos + h)
				abort(); /* headers must point into the head */
		check_set_close(type, method, s + pos, h);
		pos += h;
		while (!m.complete) {
			size_t left = size - pos - fed;
			size_t n = left < chunk ? left : chunk;
			ssize_t got = or_http_msg_body(&m, s + pos + fed, n);

			if (got < 0)
				return;
			if ((size_t)got > n)
				abort();
			fed += got;
			if (n == 0)
				break; /* EOF fed */
			if ((size_t)got < n && !m.complete)
				abort(); /* stopped early without the message ending */
		}
		pos += fed;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum http_parser_type type;
	int method = HTTP_GET;
	size_t chunk;

	if (size < 2)
		return 0;
	type = (data[0] & 1) ? HTTP_RESPONSE : HTTP_REQUEST;
	if (data[0] & 2)
		method = HTTP_HEAD;
	chunk = 1 + data[1] * 64;
	frame_stream(type, method, data + 2, size - 2, chunk);
	return 0;
}
