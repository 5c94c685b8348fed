// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <string.h>
#include <strings.h>

#include "http.h"

size_t or_http_head_end(const char *buf, size_t len)
{
	const char *p = memmem(buf, len, "\r\n\r\n", 4);

	return p ? (size_t)(p - buf) + 4 : 0;
}

int or_http_head_check(const char *head, size_t len, const char **why)
{
	for (size_t i = 0; i < len; i++) {
		char c = head[i];

		if (c == '\0') {
			*why = "NUL byte in head";
			return -1;
		}
		if (c == '\r' && (i + 1 >= len || head[i + 1] != '\n')) {
			*why = "bare CR in head";
			return -1;
		}
		if (c == '\n' && (i == 0 || head[i - 1] != '\r')) {
			*why = "bare LF in head";
			return -1;
		}
		/* A line starting with white space continues the previous one. */
		if (c == '\n' && i + 1 < len && (head[i + 1] == ' ' || head[i + 1] == '\t')) {
			*why = "obs-fold line continuation in head";
			return -1;
		}
	}
	return 0;
}

static struct or_http_msg *msg_of(http_parser *p)
{
	return p->data;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
	struct or_http_msg *m = msg_of(p);

	if (!m->url)
		m->url = at;
	m->url_len += len;
	return 0;
}

/* A header field starts when the previous callback was a value (or none). */
static int on_header_field(http_parser *p, const char *at, size_t len)
{
	struct or_http_msg *m = msg_of(p);
	struct or_http_header *h;

	if (m->n_hdr == 0 || m->hdr[m->n_hdr - 1].value) {
		if (m->n_hdr == OR_HTTP_MAX_HEADERS) {
			m->why = "too many headers";
			return -1;
		}
		h = &m->hdr[m->n_hdr++];
		h->name = at;
		h->name_len = 0;
		h->value = NULL;
		h->value_len = 0;
	}
	m->hdr[m->n_hdr - 1].name_len += len;
	return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
	struct or_http_msg *m = msg_of(p);
	struct or_http_header *h;

	if (m->n_hdr == 0)
		return -1;
	h = &m->hdr[m->n_hdr - 1];
	if (!h->value)
		h->value = at;
	h->value_len += len;
	return 0;
}

bool or_http_token_eq(const char *a, size_t alen, const char *b)
{
	return strlen(b) == alen && strncasecmp(a, b, alen) == 0;
}

/* The last comma-separated token of a header value, trimmed. */
static void last_token(const char *v, size_t len, const char **tok, size_t *tlen)
{
	size_t end = len, start;

	while (end && (v[end - 1] == ' ' || v[end - 1] == '\t'))
		end--;
	start = end;
	while (start && v[start - 1] != ',')
		start--;
	while (start < end && (v[start] == ' ' || v[start] == '\t'))
		start++;
	*tok = v + start;
	*tlen = end - start;
}

static int on_headers_complete(http_parser *p)
{
	struct or_http_msg *m = msg_of(p);
	const char *tok;
	size_t tlen;

	m->head_done = true;
	for (size_t i = 0; i < m->n_hdr; i++) {
		const struct or_http_header *h = &m->hdr[i];

		if (or_http_token_eq(h->name, h->name_len, "content-length")) {
			m->n_content_length++;
		} else if (or_http_token_eq(h->name, h->name_len, "transfer-encoding")) {
			if (m->has_te) {
				m->why = "two Transfer-Encoding headers";
				return -1;
			}
			m->has_te = true;
			last_token(h->value ? h->value : "", h->value_len, &tok, &tlen);
			if (!or_http_token_eq(tok, tlen, "chunked")) {
				m->why = "Transfer-Encoding does not end in chunked";
				return -1;
			}
		} else if (or_http_token_eq(h->name, h->name_len, "expect") && h->value &&
			   or_http_token_eq(h->value, h->value_len, "100-continue")) {
			m->expect_continue = true;
		}
	}
	if (m->n_content_length > 1) {
		m->why = "more than one Content-Length";
		return -1;
	}
	if (m->n_content_length && m->has_te) {
		m->why = "Content-Length together with Transfer-Encoding";
		return -1;
	}
	/* 1: no body follows (a response to HEAD); http-parser knows 1xx/204/304. */
	return m->skip_body ? 1 : 0;
}

static int on_message_complete(http_parser *p)
{
	struct or_http_msg *m = msg_of(p);

	m->complete = true;
	/* Stop here: bytes after this message belong to the next one. */
	http_parser_pause(p, 1);
	return 0;
}

static http_parser_settings settings = {
	.on_url = on_url,
	.on_header_field = on_header_field,
	.on_header_value = on_header_value,
	.on_headers_complete = on_headers_complete,
	.on_message_complete = on_message_complete,
};

void or_http_msg_init(struct or_http_msg *m, enum http_parser_type type, int request_method)
{
	/* hdr[] is large and only valid up to n_hdr: leave it, clear the rest. */
	memset(m, 0, offsetof(struct or_http_msg, hdr));
	m->n_hdr = 0;
	m->n_content_length = 0;
	m->has_te = false;
	m->expect_continue = false;
	http_parser_init(&m->p, type);
	m->p.data = m;
	m->settings = &settings;
	m->skip_body = type == HTTP_RESPONSE && request_method == HTTP_HEAD;
}

static void set_error(struct or_http_msg *m)
{
	enum http_errno e = HTTP_PARSER_ERRNO(&m->p);

	m->error = e ? (int)e : -1;
	if (!m->why)
		m->why = e ? http_errno_description(e) : "malformed message";
}

int or_http_msg_head(struct or_http_msg *m, const char *head, size_t len)
{
	size_t n;

	if (or_http_head_check(head, len, &m->why)) {
		m->error = -1;
		return -1;
	}
	n = http_parser_execute(&m->p, m->settings, head, len);
	if (HTTP_PARSER_ERRNO(&m->p) == HPE_PAUSED) /* no body: complete already */
		http_parser_pause(&m->p, 0);
	else if (HTTP_PARSER_ERRNO(&m->p) != HPE_OK || n != len || !m->head_done)
		goto fail;
	if (!m->head_done)
		goto fail;
	return 0;
fail:
	set_error(m);
	return -1;
}

ssize_t or_http_msg_body(struct or_http_msg *m, const char *buf, size_t len)
{
	size_t n;

	if (m->complete)
		return 0;
	n = http_parser_execute(&m->p, m->settings, buf, len);
	if (HTTP_PARSER_ERRNO(&m->p) == HPE_PAUSED) {
		http_parser_pause(&m->p, 0);
		return n;
	}
	if (HTTP_PARSER_ERRNO(&m->p) != HPE_OK || n != len) {
		set_error(m);
		return -1;
	}
	if (len == 0 && !m->complete) {
		/* The peer closed mid-body. */
		m->why = "connection closed before the end of the message";
		m->error = -1;
		return -1;
	}
	return n;
}

static bool is_conn_line(const char *line, size_t len)
{
	static const char *const names[] = { "connection", "keep-alive", "proxy-connection" };
	const char *colon = memchr(line, ':', len);

	for (size_t i = 0; colon && i < sizeof(names) / sizeof(names[0]); i++)
		if (or_http_token_eq(line, colon - line, names[i]))
			return true;
	return false;
}

size_t or_http_head_set_close(const char *head, size_t len, char *out, size_t cap)
{
	static const char close_hdr[] = "connection: close\r\n\r\n";
	size_t at = 0, n = 0;

	if (len < 4 || memcmp(head + len - 4, "\r\n\r\n", 4) != 0)
		return 0;
	/* Every line but the empty one that ends the head; the first is the start line. */
	while (at < len - 2) {
		const char *eol = memmem(head + at, len - at, "\r\n", 2);
		size_t ll;

		if (!eol)
			return 0;
		ll = (size_t)(eol - (head + at)) + 2;
		if (at == 0 || !is_conn_line(head + at, ll - 2)) {
			if (n + ll > cap)
				return 0;
			memcpy(out + n, head + at, ll);
			n += ll;
		}
		at += ll;
	}
	if (n + sizeof(close_hdr) - 1 > cap)
		return 0;
	memcpy(out + n, close_hdr, sizeof(close_hdr) - 1);
	return n + sizeof(close_hdr) - 1;
}

const struct or_http_header *or_http_find(const struct or_http_msg *m, const char *name)
{
	for (size_t i = 0; i < m->n_hdr; i++)
		if (or_http_token_eq(m->hdr[i].name, m->hdr[i].name_len, name))
			return &m->hdr[i];
	return NULL;
}

bool or_http_keep_alive(const struct or_http_msg *m)
{
	return http_should_keep_alive(&m->p) != 0;
}
