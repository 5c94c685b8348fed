// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * libFuzzer target for the tunnel's CONNECT framing, the first bytes an
 * agent reads from a peer. The whole input is offered to both parsers, then
 * a prefix of it: whatever the parsers
 * accept must be a well-formed head, the same however the bytes arrived, and
 * must build back into something that parses the same. The last byte picks
 * the prefix (a head's first byte is always the same). The first 19 bytes
 * also make a target (family, address, port) and a status for a round trip
 * through the builders.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tunnel_proto.h"

#define CHECK(cond)                       \
	do {                              \
		if (!(cond))              \
			__builtin_trap(); \
	} while (0)

static const struct or_tunnel_framing *fr = &or_tunnel_http1;

static bool same_target(const struct or_tunnel_target *a, const struct or_tunnel_target *b)
{
	return or_ip_eq(&a->ip, &b->ip) && a->port == b->port;
}

static void check_why(const char *why)
{
	CHECK(why && why[0]);
	for (const char *p = why; *p; p++)
		CHECK(*p >= 0x20 && *p < 0x7f);
}

static void check_head_end(const char *buf, size_t consumed)
{
	CHECK(consumed >= 4 && consumed <= OR_TUNNEL_MAX_HEAD);
	CHECK(memcmp(buf + consumed - 4, "\r\n\r\n", 4) == 0);
	/* The first CRLFCRLF ends the head: none earlier. */
	CHECK(!memmem(buf, consumed - 1, "\r\n\r\n", 4));
}

static enum or_tunnel_parse request(const char *buf, size_t len, struct or_tunnel_target *t,
				    size_t *consumed)
{
	const char *why = NULL;
	enum or_tunnel_parse r = fr->parse_request(buf, len, t, consumed, &why);

	switch (r) {
	case OR_TP_OK:
		CHECK(*consumed <= len);
		check_head_end(buf, *consumed);
		CHECK(t->ip.family == AF_INET || t->ip.family == AF_INET6);
		CHECK(t->port != 0);
		CHECK(memcmp(buf, "CONNECT ", 8) == 0);
		break;
	case OR_TP_INCOMPLETE:
		CHECK(len < OR_TUNNEL_MAX_HEAD);
		break;
	case OR_TP_BAD:
		check_why(why);
		break;
	default:
		CHECK(0);
	}
	return r;
}

static enum or_tunnel_parse response(const char *buf, size_t len, int *status, size_t *consumed)
{
	enum or_tunnel_parse r = fr->parse_response(buf, len, status, consumed);

	switch (r) {
	case OR_TP_OK:
		CHECK(*consumed <= len);
		check_head_end(buf, *consumed);
		CHECK(*status >= 100 && *status <= 599);
		CHECK(memcmp(buf, "HTTP/1.1 ", 9) == 0);
		break;
	case OR_TP_INCOMPLETE:
		CHECK(len < OR_TUNNEL_MAX_HEAD);
		break;
	case OR_TP_BAD:
		break;
	default:
		CHECK(0);
	}
	return r;
}

/* What parsed once must build back into a request that parses the same. */
static void rebuild(const struct or_tunnel_target *t)
{
	char out[256];
	struct or_tunnel_target back = { 0 };
	size_t consumed = 0;
	int n = fr->build_request(t, out, sizeof(out));

	CHECK(n > 0 && (size_t)n < sizeof(out));
	CHECK(request(out, (size_t)n, &back, &consumed) == OR_TP_OK);
	CHECK(consumed == (size_t)n && same_target(t, &back));
}

/* An exact-size copy of buf[0, len), so ASan sees any read past the end. */
static char *copy(const char *buf, size_t len)
{
	char *p = malloc(len ? len : 1);

	if (p)
		memcpy(p, buf, len);
	return p;
}

static void parse_both_ways(const char *buf, size_t size, const char *part, size_t cut)
{
	struct or_tunnel_target t = { 0 }, tp = { 0 };
	enum or_tunnel_parse r, rp;
	size_t consumed = 0, cp = 0;
	int status = 0, sp = 0;
	char *shorter;

	r = request(buf, size, &t, &consumed);
	rp = request(part, cut, &tp, &cp);
	/* Monotonic: a bad prefix stays bad, a head is found at the same place. */
	if (rp == OR_TP_BAD)
		CHECK(r == OR_TP_BAD);
	if (rp == OR_TP_OK)
		CHECK(r == OR_TP_OK && cp == consumed && same_target(&t, &tp));
	if (r == OR_TP_OK) {
		CHECK(rp == (cut >= consumed ? OR_TP_OK : OR_TP_INCOMPLETE));
		/* One byte short of the head is still only incomplete. */
		shorter = copy(buf, consumed - 1);
		if (shorter)
			CHECK(request(shorter, consumed - 1, &tp, &cp) == OR_TP_INCOMPLETE);
		free(shorter);
		rebuild(&t);
	}

	r = response(buf, size, &status, &consumed);
	rp = response(part, cut, &sp, &cp);
	if (rp == OR_TP_BAD)
		CHECK(r == OR_TP_BAD);
	if (rp == OR_TP_OK)
		CHECK(r == OR_TP_OK && cp == consumed && sp == status);
	if (r == OR_TP_OK) {
		CHECK(rp == (cut >= consumed ? OR_TP_OK : OR_TP_INCOMPLETE));
		shorter = copy(buf, consumed - 1);
		if (shorter)
			CHECK(response(shorter, consumed - 1, &sp, &cp) == OR_TP_INCOMPLETE);
		free(shorter);
	}
}

static void round_trip(const uint8_t *d)
{
	static const int codes[] = { 200, 400, 403, 502, 503 };
	struct or_tunnel_target t = { 0 }, back = { 0 };
	char buf[256];
	size_t consumed = 0;
	int n, status = 0, code;

	t.ip.family = (d[0] & 1) ? AF_INET6 : AF_INET;
	memcpy(&t.ip.v6, d + 1, 16);
	if (t.ip.family == AF_INET)
		memset((char *)&t.ip.v6 + 4, 0, 12);
	t.port = (uint16_t)(d[17] << 8 | d[18]);
	n = fr->build_request(&t, buf, sizeof(buf));
	if (!t.port) {
		CHECK(n == -EINVAL);
	} else {
		CHECK(n > 0);
		CHECK(request(buf, (size_t)n, &back, &consumed) == OR_TP_OK);
		CHECK(consumed == (size_t)n && same_target(&t, &back));
		/* Too small a buffer is -ENOSPC, never a cut request. */
		CHECK(fr->build_request(&t, buf, (size_t)n) == -ENOSPC);
	}

	code = (d[0] >> 1) % 8 < 5 ? codes[(d[0] >> 1) % 8] : 100 + d[17] % 250 * 2;
	n = fr->build_response(code, buf, sizeof(buf));
	if (n < 0) {
		CHECK(n == -EINVAL);
		return;
	}
	CHECK(response(buf, (size_t)n, &status, &consumed) == OR_TP_OK);
	CHECK(status == code && consumed == (size_t)n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t cut = size ? (size_t)data[size - 1] * size / 256 : 0;
	char *buf = copy((const char *)data, size), *part = copy((const char *)data, cut);
	uint8_t seed[19] = { 0 };

	if (buf && part)
		parse_both_ways(buf, size, part, cut);
	free(part);
	free(buf);

	memcpy(seed, data, size < sizeof(seed) ? size : sizeof(seed));
	round_trip(seed);
	return 0;
}
