// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * HTTP/1.1 CONNECT framing for the mTLS tunnel (see tunnel_proto.h).
 *
 * Hand-written rather than http-parser: the grammar is one fixed request line
 * ("CONNECT <IP literal>:<port> HTTP/1.1") or status line, then header lines,
 * and everything else must be refused. The packaged http-parser is built
 * without HTTP_PARSER_STRICT, so it takes bare LF line ends and obs-fold, and
 * it neither bounds the header count nor checks the authority; every one of
 * those would have to be checked again on top of it. A scanner of this size is
 * easier to audit and to fuzz than that pair.
 *
 * Both parsers are monotonic in their input, which the caller relies on when
 * it reads in pieces: a prefix of a valid head is OR_TP_INCOMPLETE, and once
 * a prefix is OR_TP_BAD every longer input is too. A bad byte or a wrong
 * start is refused as soon as it arrives, not after OR_TUNNEL_MAX_HEAD bytes.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "tunnel_proto.h"

#define TP_MAX_HEADERS 32
#define TP_METHOD "CONNECT "
#define TP_VERSION "HTTP/1.1"

/* Checks the first line once it is complete; returns NULL or why it is bad. */
typedef const char *(*first_line_fn)(const char *line, size_t len, void *out);

struct head_spec {
	const char *start;   /* what the first line must begin with, checked as bytes arrive */
	first_line_fn first; /* the whole first line */
	void *out;           /* for `first` */
};

/* RFC 9110 tchar: what a header field name is made of. */
static bool is_tchar(unsigned char ch)
{
	if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
		return true;
	return ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

/*
 * "name: value": a token, the colon right after it (whitespace before the
 * colon is a smuggling vector), then any value. Control characters other
 * than HTAB were refused by the caller.
 */
static const char *check_header(const char *line, size_t len)
{
	size_t i;

	if (line[0] == ' ' || line[0] == '\t')
		return "obs-fold (a header line starting with whitespace)";
	for (i = 0; i < len && is_tchar((unsigned char)line[i]); i++)
		;
	if (i == 0 || i == len || line[i] != ':')
		return "malformed header field";
	return NULL;
}

/*
 * The bytes at the start of buf that are seen so far, against `spec`:
 * OR_TP_OK with *head_len when the head (through CRLFCRLF) is complete.
 */
static enum or_tunnel_parse scan_head(const char *buf, size_t len, const struct head_spec *spec,
				      size_t *head_len, const char **why)
{
	size_t lim = len < OR_TUNNEL_MAX_HEAD ? len : OR_TUNNEL_MAX_HEAD;
	size_t pos = 0, n_lines = 0, i, slen;
	const char *bad;

	for (;;) {
		for (i = pos; i < lim; i++) {
			unsigned char ch = (unsigned char)buf[i];

			if (ch == '\r') {
				if (i + 1 == lim)
					goto more;
				if (buf[i + 1] != '\n') {
					bad = "bare CR";
					goto bad;
				}
				break;
			}
			if (ch == '\n') {
				bad = "bare LF (line ends must be CRLF)";
				goto bad;
			}
			if (ch == '\0') {
				bad = "NUL byte";
				goto bad;
			}
			if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
				bad = "control character";
				goto bad;
			}
		}
		if (i == lim)
			goto more;
		/* A complete line: buf[pos, i), then CRLF. */
		if (n_lines == 0) {
			bad = spec->first(buf, i, spec->out);
			if (bad)
				goto bad;
		} else if (i == pos) {
			*head_len = i + 2;
			return OR_TP_OK;
		} else {
			bad = check_header(buf + pos, i - pos);
			if (bad)
				goto bad;
			if (n_lines > TP_MAX_HEADERS) {
				bad = "more than 32 header fields";
				goto bad;
			}
		}
		n_lines++;
		pos = i + 2;
	}

more:
	if (len >= OR_TUNNEL_MAX_HEAD) {
		bad = "head longer than 8192 bytes";
		goto bad;
	}
	/* A first line that has started wrong never gets right. */
	if (n_lines == 0) {
		slen = strlen(spec->start);
		if (memcmp(buf, spec->start, lim < slen ? lim : slen) != 0) {
			bad = spec->first(buf, lim, spec->out);
			goto bad;
		}
	} else if (lim > pos && (buf[pos] == ' ' || buf[pos] == '\t')) {
		bad = "obs-fold (a header line starting with whitespace)";
		goto bad;
	}
	return OR_TP_INCOMPLETE;

bad:
	if (why)
		*why = bad;
	return OR_TP_BAD;
}

/* ---- request ----------------------------------------------------------- */

/* 1..65535 in plain decimal: no sign, no leading zero. */
static bool parse_port(const char *s, size_t len, uint16_t *port)
{
	uint32_t v = 0;

	if (len == 0 || len > 5 || s[0] < '1' || s[0] > '9')
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (uint32_t)(s[i] - '0');
	}
	if (v > 65535)
		return false;
	*port = (uint16_t)v;
	return true;
}

/* "a.b.c.d:port" or "[v6]:port", literals only. */
static const char *parse_authority(const char *s, size_t len, struct or_tunnel_target *t)
{
	char text[OR_IP_STRLEN + 1];
	const char *host = s, *colon;
	size_t hlen;
	int family = AF_INET;

	if (len && s[0] == '[') {
		const char *close = memchr(s, ']', len);

		if (!close || (size_t)(close - s) + 1 == len || close[1] != ':')
			return "request target is not IP:PORT or [IPv6]:PORT";
		host = s + 1;
		hlen = (size_t)(close - host);
		colon = close + 1;
		family = AF_INET6;
	} else {
		colon = memchr(s, ':', len);
		if (!colon)
			return "request target has no port";
		hlen = (size_t)(colon - s);
	}
	if (hlen == 0 || hlen >= sizeof(text))
		return "request target is not an IP address";
	memcpy(text, host, hlen);
	text[hlen] = '\0';
	/* inet_pton: dotted quad without leading zeros; IPv6 without a zone. */
	if (inet_pton(family, text, &t->ip.v6) != 1)
		return family == AF_INET6 ? "request target is not an IPv6 literal"
					  : "request target is not an IPv4 literal";
	t->ip.family = family;
	if (!parse_port(colon + 1, len - (size_t)(colon + 1 - s), &t->port))
		return "request target port is not 1-65535";
	return NULL;
}

static const char *check_request_line(const char *line, size_t len, void *out)
{
	const size_t mlen = strlen(TP_METHOD), vlen = strlen(TP_VERSION);
	struct or_tunnel_target t = { 0 };
	const char *sp, *bad;

	if (len < mlen || memcmp(line, TP_METHOD, mlen) != 0)
		return "not a CONNECT request";
	line += mlen;
	len -= mlen;
	sp = memchr(line, ' ', len);
	if (!sp)
		return "request line has no HTTP version";
	if ((size_t)(line + len - (sp + 1)) != vlen || memcmp(sp + 1, TP_VERSION, vlen) != 0)
		return "not HTTP/1.1 (or extra spaces in the request line)";
	bad = parse_authority(line, (size_t)(sp - line), &t);
	if (bad)
		return bad;
	*(struct or_tunnel_target *)out = t;
	return NULL;
}

static enum or_tunnel_parse http1_parse_request(const char *buf, size_t len,
						struct or_tunnel_target *t, size_t *consumed,
						const char **why)
{
	struct or_tunnel_target got = { 0 };
	struct head_spec spec = { .start = TP_METHOD, .first = check_request_line, .out = &got };
	enum or_tunnel_parse r;
	size_t head_len;

	if (!buf)
		len = 0;
	r = scan_head(buf, len, &spec, &head_len, why);
	if (r == OR_TP_OK) {
		*t = got;
		*consumed = head_len;
	}
	return r;
}

static int http1_build_request(const struct or_tunnel_target *t, char *buf, size_t len)
{
	char ip[OR_IP_STRLEN];
	const char *l, *r;
	int n;

	if ((t->ip.family != AF_INET && t->ip.family != AF_INET6) || !t->port)
		return -EINVAL;
	if (!inet_ntop(t->ip.family, &t->ip.v6, ip, sizeof(ip)))
		return -EINVAL;
	l = t->ip.family == AF_INET6 ? "[" : "";
	r = t->ip.family == AF_INET6 ? "]" : "";
	n = snprintf(buf, len, "CONNECT %s%s%s:%u HTTP/1.1\r\nHost: %s%s%s:%u\r\n\r\n", l, ip, r,
		     t->port, l, ip, r, t->port);
	if (n < 0 || (size_t)n >= len)
		return -ENOSPC;
	return n;
}

/* ---- response ---------------------------------------------------------- */

static const char *reason_phrase(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 403:
		return "Forbidden";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	}
	return NULL;
}

static int http1_build_response(int status, char *buf, size_t len)
{
	const char *reason = reason_phrase(status);
	int n;

	if (!reason)
		return -EINVAL;
	n = snprintf(buf, len, "HTTP/1.1 %d %s\r\n\r\n", status, reason);
	if (n < 0 || (size_t)n >= len)
		return -ENOSPC;
	return n;
}

/* "HTTP/1.1 NNN reason": three digits 100-599, one space, any (maybe empty) reason. */
static const char *check_status_line(const char *line, size_t len, void *out)
{
	const size_t vlen = strlen(TP_VERSION);

	if (len < vlen + 1 || memcmp(line, TP_VERSION " ", vlen + 1) != 0)
		return "not an HTTP/1.1 status line";
	line += vlen + 1;
	len -= vlen + 1;
	if (len < 4 || line[0] < '1' || line[0] > '5' || line[1] < '0' || line[1] > '9' ||
	    line[2] < '0' || line[2] > '9' || line[3] != ' ')
		return "malformed status code";
	*(int *)out = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	return NULL;
}

static enum or_tunnel_parse http1_parse_response(const char *buf, size_t len, int *status,
						 size_t *consumed)
{
	int code = 0;
	struct head_spec spec = { .start = TP_VERSION " ", .first = check_status_line,
				  .out = &code };
	enum or_tunnel_parse r;
	size_t head_len;

	if (!buf)
		len = 0;
	r = scan_head(buf, len, &spec, &head_len, NULL);
	if (r == OR_TP_OK) {
		*status = code;
		*consumed = head_len;
	}
	return r;
}

const struct or_tunnel_framing or_tunnel_http1 = {
	.name = "http1-connect",
	.build_request = http1_build_request,
	.parse_request = http1_parse_request,
	.build_response = http1_build_response,
	.parse_response = http1_parse_response,
};
