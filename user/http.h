/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * HTTP/1.1 message framing over http-parser: where a head ends, what it
 * says, where the body ends. Bytes are forwarded as received; only the
 * request head is rebuilt (see http_proxy.c). Everything here sees
 * untrusted bytes and is fuzzed (tests/fuzz/fuzz_http.c).
 *
 * Stricter than http-parser alone, against request smuggling: a head with
 * a NUL, a bare CR or LF, or an obs-fold line continuation is rejected, as
 * are Content-Length together with Transfer-Encoding, two Content-Length
 * headers, and a Transfer-Encoding other than a final "chunked".
 */
#ifndef OR_HTTP_H
#define OR_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <http_parser.h>

#define OR_HTTP_MAX_HEAD (60 * 1024) /* request or response head bytes */
#define OR_HTTP_MAX_HEADERS 100

struct or_http_header {
	const char *name; /* into the head buffer the caller keeps */
	size_t name_len;
	const char *value;
	size_t value_len;
};

struct or_http_msg {
	http_parser p;
	http_parser_settings *settings;
	bool head_done;
	bool complete;
	bool skip_body;        /* response to HEAD, or 1xx/204/304 */
	int error;             /* 0 or an http_errno, or -1 for our own checks */
	const char *why;       /* what was wrong, for logs and 400 bodies */
	/* From the head (valid once head_done): */
	const char *url;
	size_t url_len;
	struct or_http_header hdr[OR_HTTP_MAX_HEADERS];
	size_t n_hdr;
	int n_content_length;
	bool has_te;
	bool expect_continue;
};

/* Length of the head in buf (through CRLFCRLF), 0 if not all there yet. */
size_t or_http_head_end(const char *buf, size_t len);

/* 0 when the head's bytes are acceptable, else -1 with *why set. */
int or_http_head_check(const char *head, size_t len, const char **why);

/*
 * Starts a message. For a response, `request_method` (enum http_method)
 * says whether it answers a HEAD, which has no body.
 */
void or_http_msg_init(struct or_http_msg *m, enum http_parser_type type, int request_method);

/*
 * Feeds a complete head (as found by or_http_head_end and accepted by
 * or_http_head_check). Returns 0 with the head parsed and head_done set,
 * or -1 with m->why. Header pointers point into `head`.
 */
int or_http_msg_head(struct or_http_msg *m, const char *head, size_t len);

/*
 * Feeds body bytes; len 0 means the peer closed (ends a read-until-close
 * body). Returns how many bytes belong to this message (it stops at the
 * message's end: the rest belongs to the next one), or -1 on a framing
 * error (m->why). m->complete is set at the end of the message.
 */
ssize_t or_http_msg_body(struct or_http_msg *m, const char *buf, size_t len);

/*
 * A checked head (or_http_head_check, ending in CRLFCRLF) rewritten into
 * out: its Connection, Keep-Alive and Proxy-Connection lines dropped and
 * "connection: close" added, for the last answer of a connection.
 * Returns the new length (at most len + OR_HTTP_CLOSE_GROWTH), or 0 when
 * out is too small or the head is not one.
 */
#define OR_HTTP_CLOSE_GROWTH 19 /* strlen("connection: close\r\n") */
size_t or_http_head_set_close(const char *head, size_t len, char *out, size_t cap);

/* The header's value, or NULL. Case-insensitive name. */
const struct or_http_header *or_http_find(const struct or_http_msg *m, const char *name);
bool or_http_keep_alive(const struct or_http_msg *m);
bool or_http_token_eq(const char *a, size_t alen, const char *b);

#endif
