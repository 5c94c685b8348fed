// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * libFuzzer target for the take-over messages (user/handover.c): what a new
 * agent reads from the running one, and the running one from whoever
 * connects to its socket. Whatever or_ho_parse accepts must be internally
 * consistent: strings NUL-terminated inside the buffer, kinds in range, and
 * a HELLO or ITEM must build back (the wire layout) into the same bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "handover.h"

#define CHECK(cond)                       \
	do {                              \
		if (!(cond))              \
			__builtin_trap(); \
	} while (0)

static void check_str(const char *s, const uint8_t *buf, size_t len)
{
	CHECK(s);
	CHECK((const uint8_t *)s >= buf && (const uint8_t *)s < buf + len);
	CHECK(memchr(s, 0, (size_t)(buf + len - (const uint8_t *)s)));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *buf = malloc(size ? size : 1);
	struct or_ho_msg m;

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	if (or_ho_parse(buf, size, &m) == 0) {
		CHECK(size >= sizeof(struct or_ho_hdr) && size <= OR_HO_MSG_MAX);
		switch (m.type) {
		case OR_HO_HELLO:
			check_str(m.node, buf, size);
			check_str(m.pin_dir, buf, size);
			/* node then pin_dir end the message exactly */
			CHECK((const uint8_t *)m.pin_dir + strlen(m.pin_dir) + 1 == buf + size);
			break;
		case OR_HO_ITEM:
			check_str(m.key, buf, size);
			CHECK(m.kind >= OR_HO_POD && m.kind <= OR_HO_HEALTH);
			CHECK(strlen(m.key) < OR_HO_KEY_MAX);
			break;
		case OR_HO_REFUSE:
			check_str(m.reason, buf, size);
			break;
		case OR_HO_END:
		case OR_HO_READY:
			break;
		default:
			CHECK(0);
		}
	}
	free(buf);
	return 0;
}
