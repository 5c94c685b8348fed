// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The retry decision and backoff (see retry.h). Pure functions of their
 * arguments: the proxy calls them per failed try, the unit tests walk the
 * whole table.
 */
#include <string.h>

#include "retry.h"

static bool status_listed(const struct or_retry_cfg *cfg, int status)
{
	size_t n = cfg->n_retriable_status_codes;

	if (n > OR_MAX_RETRIABLE_CODES)
		n = OR_MAX_RETRIABLE_CODES;
	for (size_t i = 0; i < n; i++)
		if (cfg->retriable_status_codes[i] == status)
			return true;
	return false;
}

static bool is_5xx(int status)
{
	return status >= 500 && status <= 599;
}

static bool is_gateway_error(int status)
{
	return status == 502 || status == 503 || status == 504;
}

/* The retry_on bits that would cover this failure (the table in retry.h). */
static uint32_t covering(const struct or_retry_cfg *cfg, const struct or_retry_input *in)
{
	uint32_t bits = 0;

	switch (in->kind) {
	case OR_FAIL_CONNECT:
		return OR_RETRY_ON_CONNECT_FAILURE | OR_RETRY_ON_5XX;
	case OR_FAIL_RESET:
		return OR_RETRY_ON_RESET | OR_RETRY_ON_5XX;
	case OR_FAIL_PER_TRY_TIMEOUT:
		/* Envoy counts a per-try timeout as a gateway error (it answers 504 for it). */
		return OR_RETRY_ON_RESET | OR_RETRY_ON_5XX | OR_RETRY_ON_GATEWAY_ERROR;
	case OR_FAIL_STATUS:
		if (is_5xx(in->status))
			bits |= OR_RETRY_ON_5XX;
		if (is_gateway_error(in->status))
			bits |= OR_RETRY_ON_GATEWAY_ERROR;
		if (status_listed(cfg, in->status))
			bits |= OR_RETRY_ON_RETRIABLE_STATUS;
		return bits;
	}
	return 0;
}

enum or_retry_verdict or_retry_decide(const struct or_retry_cfg *cfg,
				      const struct or_retry_input *in)
{
	uint32_t bits = covering(cfg, in);
	/* tries is at least 1 by contract; 0 must not buy an extra retry. */
	uint32_t tries = in->tries ? in->tries : 1;

	/* A 200 or a 404 is an answer, not a failure, whatever the policy enables. */
	if (!bits)
		return OR_RETRY_NOT_FAILURE;
	if (tries > cfg->attempts)
		return OR_RETRY_NO_ATTEMPTS;
	if (!in->body_buffered)
		return OR_RETRY_NO_BODY;
	if (!(bits & cfg->retry_on))
		return OR_RETRY_NO_POLICY;
	/* A connect failure sent nothing, so even a POST may go elsewhere. */
	if (in->kind != OR_FAIL_CONNECT && in->request_sent && !in->idempotent)
		return OR_RETRY_UNSAFE;
	return OR_RETRY_YES;
}

const char *or_retry_verdict_name(enum or_retry_verdict v)
{
	switch (v) {
	case OR_RETRY_YES:
		return "yes";
	case OR_RETRY_NOT_FAILURE:
		return "not_failure";
	case OR_RETRY_NO_POLICY:
		return "no_policy";
	case OR_RETRY_NO_ATTEMPTS:
		return "no_attempts";
	case OR_RETRY_NO_BODY:
		return "no_body";
	case OR_RETRY_UNSAFE:
		return "unsafe";
	}
	return "unknown";
}

bool or_http_method_idempotent(const char *method, size_t len)
{
	/* Method tokens are case-sensitive (RFC 9110 9.1): "get" is not GET. */
	static const char *const idempotent[] = { "GET", "HEAD", "OPTIONS", "TRACE", "PUT",
						  "DELETE" };

	if (!method)
		return false;
	for (size_t i = 0; i < sizeof(idempotent) / sizeof(idempotent[0]); i++)
		if (strlen(idempotent[i]) == len && memcmp(idempotent[i], method, len) == 0)
			return true;
	return false;
}

uint32_t or_backoff_ms(const struct or_retry_cfg *cfg, uint32_t retry, uint64_t rnd)
{
	uint64_t cap = cfg->backoff_max_ms, exp;
	uint32_t shift = retry > 1 ? retry - 1 : 0;

	/* base x 2^shift, unless that already passes max (or 64 bits). */
	if (shift < 32) {
		exp = (uint64_t)cfg->backoff_base_ms << shift;
		if (exp < cap)
			cap = exp;
	}
	/* Uniform in [0, cap] from the high bits of rnd: no modulo bias to speak of. */
	return (uint32_t)(((unsigned __int128)rnd * (cap + 1)) >> 64);
}
