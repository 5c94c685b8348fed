/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The retry decision: given what failed and what has been sent, may this
 * request (or L4 connection) be tried again? Pure table, unit tested; the
 * caller then takes the retry from the budget and the circuit breaker's
 * max_retries, and waits or_backoff_ms() before the next try.
 */
#ifndef OR_RETRY_H
#define OR_RETRY_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"

enum or_failure {
	OR_FAIL_CONNECT,         /* connect refused, unreachable or timed out: nothing sent */
	OR_FAIL_RESET,           /* upstream reset or closed before a whole response head */
	OR_FAIL_PER_TRY_TIMEOUT, /* no response head within per_try_timeout_ms */
	OR_FAIL_STATUS,          /* a response head arrived with `status` */
};

struct or_retry_input {
	enum or_failure kind;
	int status;           /* OR_FAIL_STATUS: the response's status code */
	bool idempotent;      /* GET HEAD OPTIONS TRACE PUT DELETE (L4: true) */
	bool request_sent;    /* any byte of the request reached the upstream */
	bool body_buffered;   /* the whole body is held (<= max_body_bytes) */
	uint32_t tries;       /* tries made so far, >= 1 */
};

enum or_retry_verdict {
	OR_RETRY_YES,
	OR_RETRY_NOT_FAILURE, /* a status that is not a failure for this policy */
	OR_RETRY_NO_POLICY,   /* retry_on does not cover this failure */
	OR_RETRY_NO_ATTEMPTS, /* tries > attempts */
	OR_RETRY_NO_BODY,     /* body bigger than max_body_bytes: never retried */
	OR_RETRY_UNSAFE,      /* not idempotent and already (partly) sent */
};

/*
 * Order of checks: NOT_FAILURE (a status no retry_on entry names), then
 * NO_ATTEMPTS, NO_BODY, NO_POLICY, UNSAFE, else YES. Which retry_on bits
 * cover which failure:
 *   CONNECT          connect-failure, 5xx
 *   RESET            reset, 5xx
 *   PER_TRY_TIMEOUT  reset, 5xx, gateway-error
 *   STATUS s         5xx if 500..599; gateway-error if 502/503/504;
 *                    retriable-status-codes if s is listed
 * A CONNECT failure has sent nothing, so it is safe for any method.
 */
enum or_retry_verdict or_retry_decide(const struct or_retry_cfg *cfg,
				      const struct or_retry_input *in);
const char *or_retry_verdict_name(enum or_retry_verdict v);

/* RFC 9110 idempotent methods: GET HEAD OPTIONS TRACE PUT DELETE. */
bool or_http_method_idempotent(const char *method, size_t len);

/*
 * Full-jitter exponential backoff before retry number `retry` (1 = first
 * retry): uniform in [0, min(max_ms, base_ms * 2^(retry-1))], using `rnd`
 * as the random source (any 64-bit value).
 */
uint32_t or_backoff_ms(const struct or_retry_cfg *cfg, uint32_t retry, uint64_t rnd);

#endif
