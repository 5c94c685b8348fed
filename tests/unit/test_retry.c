// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The retry decision table, walked exhaustively: every failure kind (and a
 * spread of statuses) against every subset of retry_on, with and without an
 * idempotent method, bytes sent, a buffered body, and tries on both sides
 * of the limit. The expected answer is built from the table in retry.h
 * written out as data below, and the order of checks documented there.
 * Then backoff bounds, and method idempotency.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "retry.h"

#define CF OR_RETRY_ON_CONNECT_FAILURE
#define RS OR_RETRY_ON_RESET
#define X5 OR_RETRY_ON_5XX
#define GW OR_RETRY_ON_GATEWAY_ERROR
#define RC OR_RETRY_ON_RETRIABLE_STATUS

struct row {
	enum or_failure kind;
	int status;
	uint32_t covered; /* retry_on bits that cover it, from retry.h's table */
};

/* With retriable_status_codes = {429, 503}. */
static const struct row rows[] = {
	{ OR_FAIL_CONNECT, 0, CF | X5 },
	{ OR_FAIL_RESET, 0, RS | X5 },
	{ OR_FAIL_PER_TRY_TIMEOUT, 0, RS | X5 | GW },
	{ OR_FAIL_STATUS, 100, 0 },
	{ OR_FAIL_STATUS, 200, 0 },
	{ OR_FAIL_STATUS, 404, 0 },
	{ OR_FAIL_STATUS, 418, 0 },
	{ OR_FAIL_STATUS, 429, RC },
	{ OR_FAIL_STATUS, 499, 0 },
	{ OR_FAIL_STATUS, 500, X5 },
	{ OR_FAIL_STATUS, 501, X5 },
	{ OR_FAIL_STATUS, 502, X5 | GW },
	{ OR_FAIL_STATUS, 503, X5 | GW | RC },
	{ OR_FAIL_STATUS, 504, X5 | GW },
	{ OR_FAIL_STATUS, 505, X5 },
	{ OR_FAIL_STATUS, 599, X5 },
	{ OR_FAIL_STATUS, 600, 0 },
	{ OR_FAIL_STATUS, -1, 0 },
};

static struct or_retry_cfg base_cfg(void)
{
	struct or_retry_cfg cfg;

	memset(&cfg, 0, sizeof(cfg));
	cfg.attempts = 2;
	cfg.retry_on = OR_RETRY_ON_ALL;
	cfg.retriable_status_codes[0] = 429;
	cfg.retriable_status_codes[1] = 503;
	cfg.n_retriable_status_codes = 2;
	cfg.backoff_base_ms = 25;
	cfg.backoff_max_ms = 250;
	cfg.max_body_bytes = 65536;
	return cfg;
}

/* retry.h: NOT_FAILURE, then NO_ATTEMPTS, NO_BODY, NO_POLICY, UNSAFE, else YES. */
static enum or_retry_verdict expected(const struct row *r, uint32_t retry_on, uint32_t attempts,
				      const struct or_retry_input *in)
{
	if (!r->covered)
		return OR_RETRY_NOT_FAILURE;
	if (in->tries > attempts)
		return OR_RETRY_NO_ATTEMPTS;
	if (!in->body_buffered)
		return OR_RETRY_NO_BODY;
	if (!(r->covered & retry_on))
		return OR_RETRY_NO_POLICY;
	if (r->kind != OR_FAIL_CONNECT && !in->idempotent && in->request_sent)
		return OR_RETRY_UNSAFE;
	return OR_RETRY_YES;
}

/* One row under one policy: every flag combination, tries on both sides of the limit. */
static void check_row(const struct row *r, uint32_t retry_on, uint32_t attempts, size_t *checked,
		      size_t *yes)
{
	struct or_retry_cfg cfg = base_cfg();

	cfg.retry_on = retry_on;
	cfg.attempts = attempts;
	for (unsigned int flags = 0; flags < 8; flags++) {
		for (uint32_t tries = 1; tries <= attempts + 2; tries++) {
			struct or_retry_input in = {
				.kind = r->kind,
				.status = r->status,
				.idempotent = flags & 1,
				.request_sent = flags & 2,
				.body_buffered = flags & 4,
				.tries = tries,
			};
			enum or_retry_verdict want = expected(r, retry_on, attempts, &in);
			enum or_retry_verdict got = or_retry_decide(&cfg, &in);

			cr_assert_eq(got, want,
				     "kind %d status %d retry_on 0x%x attempts %u idempotent %d "
				     "sent %d buffered %d tries %u: got %s, want %s",
				     r->kind, r->status, retry_on, attempts, in.idempotent,
				     in.request_sent, in.body_buffered, tries,
				     or_retry_verdict_name(got), or_retry_verdict_name(want));
			(*checked)++;
			*yes += got == OR_RETRY_YES;
		}
	}
}

Test(retry, whole_decision_table)
{
	static const uint32_t attempts_v[] = { 0, 1, 2, 10 };
	size_t checked = 0, yes = 0;

	for (size_t ri = 0; ri < sizeof(rows) / sizeof(rows[0]); ri++)
		for (uint32_t on = 0; on <= OR_RETRY_ON_ALL; on++)
			for (size_t ai = 0; ai < 4; ai++)
				check_row(&rows[ri], on, attempts_v[ai], &checked, &yes);
	cr_expect_gt(yes, 0);
	cr_log_info("%zu combinations, %zu retried", checked, yes);
}

/* The same table row by row, single bits only: readable when one breaks. */
static enum or_retry_verdict decide1(enum or_failure kind, int status, uint32_t retry_on)
{
	struct or_retry_cfg cfg = base_cfg();
	struct or_retry_input in = {
		.kind = kind, .status = status, .idempotent = true, .body_buffered = true,
		.tries = 1,
	};

	cfg.retry_on = retry_on;
	return or_retry_decide(&cfg, &in);
}

Test(retry, rows_by_single_bit)
{
	/* CONNECT: connect-failure, 5xx */
	cr_expect_eq(decide1(OR_FAIL_CONNECT, 0, CF), OR_RETRY_YES);
	cr_expect_eq(decide1(OR_FAIL_CONNECT, 0, X5), OR_RETRY_YES);
	cr_expect_eq(decide1(OR_FAIL_CONNECT, 0, RS), OR_RETRY_NO_POLICY);
	cr_expect_eq(decide1(OR_FAIL_CONNECT, 0, GW), OR_RETRY_NO_POLICY);
	cr_expect_eq(decide1(OR_FAIL_CONNECT, 0, RC), OR_RETRY_NO_POLICY);
	/* RESET: reset, 5xx */
	cr_expect_eq(decide1(OR_FAIL_RESET, 0, RS), OR_RETRY_YES);
	cr_expect_eq(decide1(OR_FAIL_RESET, 0, X5), OR_RETRY_YES);
	cr_expect_eq(decide1(OR_FAIL_RESET, 0, CF), OR_RETRY_NO_POLICY);
	cr_expect_eq(decide1(OR_FAIL_RESET, 0, GW), OR_RETRY_NO_POLICY);
	cr_expect_eq(decide1(OR_FAIL_RESET, 0, RC), OR_RETRY_NO_POLICY);
	/* PER_TRY_TIMEOUT: reset, 5xx, gateway-error */
	cr_expect_eq(decide1(OR_FAIL_PER_TRY_TIMEOUT, 0, RS), OR_RETRY_YES);
	cr_expect_eq(decide1(OR_FAIL_PER_TRY_TIMEOUT, 0, X5), OR_RETRY_YES);
	cr_expect_eq(decide1(OR_FAIL_PER_TRY_TIMEOUT, 0, GW), OR_RETRY_YES);
	cr_expect_eq(decide1(OR_FAIL_PER_TRY_TIMEOUT, 0, CF), OR_RETRY_NO_POLICY);
	cr_expect_eq(decide1(OR_FAIL_PER_TRY_TIMEOUT, 0, RC), OR_RETRY_NO_POLICY);
	/* STATUS */
	cr_expect_eq(decide1(OR_FAIL_STATUS, 500, X5), OR_RETRY_YES);
	cr_expect_eq(decide1(OR_FAIL_STATUS, 500, GW), OR_RETRY_NO_POLICY);
	cr_expect_eq(decide1(OR_FAIL_STATUS, 500, RC), OR_RETRY_NO_POLICY);
	cr_expect_eq(decide1(OR_FAIL_STATUS, 502, GW), OR_RETRY_YES);
	cr_expect_eq(decide1(OR_FAIL_STATUS, 504, GW), OR_RETRY_YES);
	cr_expect_eq(decide1(OR_FAIL_STATUS, 503, RC), OR_RETRY_YES);
	cr_expect_eq(decide1(OR_FAIL_STATUS, 503, CF | RS), OR_RETRY_NO_POLICY);
	cr_expect_eq(decide1(OR_FAIL_STATUS, 429, RC), OR_RETRY_YES);
	cr_expect_eq(decide1(OR_FAIL_STATUS, 429, X5 | GW), OR_RETRY_NO_POLICY);
	cr_expect_eq(decide1(OR_FAIL_STATUS, 200, OR_RETRY_ON_ALL), OR_RETRY_NOT_FAILURE);
	cr_expect_eq(decide1(OR_FAIL_STATUS, 404, OR_RETRY_ON_ALL), OR_RETRY_NOT_FAILURE);
	cr_expect_eq(decide1(OR_FAIL_STATUS, 418, RC), OR_RETRY_NOT_FAILURE, "not listed");
	cr_expect_eq(decide1(OR_FAIL_STATUS, 599, X5), OR_RETRY_YES);
	cr_expect_eq(decide1(OR_FAIL_STATUS, 600, X5), OR_RETRY_NOT_FAILURE);
}

Test(retry, order_of_checks)
{
	struct or_retry_cfg cfg = base_cfg();
	struct or_retry_input in = { .kind = OR_FAIL_STATUS, .status = 200, .tries = 99 };

	/* Everything wrong at once: NOT_FAILURE comes first ... */
	cfg.retry_on = 0;
	cr_expect_eq(or_retry_decide(&cfg, &in), OR_RETRY_NOT_FAILURE);
	/* ... then attempts ... */
	in.status = 503;
	cr_expect_eq(or_retry_decide(&cfg, &in), OR_RETRY_NO_ATTEMPTS);
	/* ... then the body ... */
	in.tries = 1;
	cr_expect_eq(or_retry_decide(&cfg, &in), OR_RETRY_NO_BODY);
	/* ... then the policy ... */
	in.body_buffered = true;
	in.request_sent = true;
	cr_expect_eq(or_retry_decide(&cfg, &in), OR_RETRY_NO_POLICY);
	/* ... then safety. */
	cfg.retry_on = OR_RETRY_ON_ALL;
	cr_expect_eq(or_retry_decide(&cfg, &in), OR_RETRY_UNSAFE);
	in.idempotent = true;
	cr_expect_eq(or_retry_decide(&cfg, &in), OR_RETRY_YES);
}

Test(retry, attempts_count_retries_after_the_first_try)
{
	struct or_retry_cfg cfg = base_cfg();
	struct or_retry_input in = { .kind = OR_FAIL_RESET, .idempotent = true,
				     .body_buffered = true };

	cfg.attempts = 2; /* three tries in all */
	in.tries = 1;
	cr_expect_eq(or_retry_decide(&cfg, &in), OR_RETRY_YES);
	in.tries = 2;
	cr_expect_eq(or_retry_decide(&cfg, &in), OR_RETRY_YES);
	in.tries = 3;
	cr_expect_eq(or_retry_decide(&cfg, &in), OR_RETRY_NO_ATTEMPTS);
	cfg.attempts = 0;
	in.tries = 1;
	cr_expect_eq(or_retry_decide(&cfg, &in), OR_RETRY_NO_ATTEMPTS, "no retries at all");
	/* tries 0 breaks the contract; it must not buy an extra retry. */
	in.tries = 0;
	cr_expect_eq(or_retry_decide(&cfg, &in), OR_RETRY_NO_ATTEMPTS);
}

Test(retry, safety)
{
	struct or_retry_cfg cfg = base_cfg();
	struct or_retry_input in = { .kind = OR_FAIL_CONNECT, .body_buffered = true, .tries = 1 };

	/* POST whose connect failed: nothing went out, so it may go elsewhere. */
	cr_expect_eq(or_retry_decide(&cfg, &in), OR_RETRY_YES);
	in.request_sent = true; /* even if a confused caller says otherwise */
	cr_expect_eq(or_retry_decide(&cfg, &in), OR_RETRY_YES);
	/* POST reset before anything was sent: safe. */
	in.kind = OR_FAIL_RESET;
	in.request_sent = false;
	cr_expect_eq(or_retry_decide(&cfg, &in), OR_RETRY_YES);
	/* POST reset after bytes went out: the upstream may have acted on it. */
	in.request_sent = true;
	cr_expect_eq(or_retry_decide(&cfg, &in), OR_RETRY_UNSAFE);
	in.kind = OR_FAIL_STATUS;
	in.status = 503;
	cr_expect_eq(or_retry_decide(&cfg, &in), OR_RETRY_UNSAFE);
	/* PUT is idempotent: fine. */
	in.idempotent = true;
	cr_expect_eq(or_retry_decide(&cfg, &in), OR_RETRY_YES);
	/* But a body too big to hold is never retried, whatever the method. */
	in.body_buffered = false;
	cr_expect_eq(or_retry_decide(&cfg, &in), OR_RETRY_NO_BODY);
}

Test(retry, status_list_is_bounded)
{
	struct or_retry_cfg cfg = base_cfg();
	struct or_retry_input in = { .kind = OR_FAIL_STATUS, .status = 418, .idempotent = true,
				     .body_buffered = true, .tries = 1 };

	/* A bogus count must not read past the array (ASan would say so). */
	cfg.n_retriable_status_codes = 1000;
	cfg.retry_on = RC;
	cr_expect_eq(or_retry_decide(&cfg, &in), OR_RETRY_NOT_FAILURE);
	cfg.n_retriable_status_codes = 0;
	in.status = 503;
	cr_expect_eq(or_retry_decide(&cfg, &in), OR_RETRY_NO_POLICY,
		     "still a 5xx, but the empty list does not name it");
}

Test(retry, verdict_names)
{
	cr_expect_str_eq(or_retry_verdict_name(OR_RETRY_YES), "yes");
	cr_expect_str_eq(or_retry_verdict_name(OR_RETRY_NOT_FAILURE), "not_failure");
	cr_expect_str_eq(or_retry_verdict_name(OR_RETRY_NO_POLICY), "no_policy");
	cr_expect_str_eq(or_retry_verdict_name(OR_RETRY_NO_ATTEMPTS), "no_attempts");
	cr_expect_str_eq(or_retry_verdict_name(OR_RETRY_NO_BODY), "no_body");
	cr_expect_str_eq(or_retry_verdict_name(OR_RETRY_UNSAFE), "unsafe");
	cr_expect_str_eq(or_retry_verdict_name((enum or_retry_verdict)42), "unknown");
}

static bool idem(const char *s)
{
	return or_http_method_idempotent(s, strlen(s));
}

Test(retry, idempotent_methods)
{
	cr_expect(idem("GET"));
	cr_expect(idem("HEAD"));
	cr_expect(idem("OPTIONS"));
	cr_expect(idem("TRACE"));
	cr_expect(idem("PUT"));
	cr_expect(idem("DELETE"));
	cr_expect_not(idem("POST"));
	cr_expect_not(idem("PATCH"));
	cr_expect_not(idem("CONNECT"));
	cr_expect_not(idem("get"), "methods are case-sensitive");
	cr_expect_not(idem("Get"));
	cr_expect_not(idem("delete"));
	cr_expect_not(idem("GETS"));
	cr_expect_not(idem("GE"));
	cr_expect_not(idem(""));
	cr_expect_not(idem(" GET"));
	/* len, not a NUL, ends the token. */
	cr_expect(or_http_method_idempotent("GET /index.html", 3));
	cr_expect_not(or_http_method_idempotent("DELETE", 5));
	cr_expect_not(or_http_method_idempotent("GET\0", 4));
	cr_expect_not(or_http_method_idempotent(NULL, 0));
	cr_expect_not(or_http_method_idempotent(NULL, 3));
}

/* splitmix64 */
static uint64_t next(uint64_t *s)
{
	uint64_t x = (*s += 0x9e3779b97f4a7c15ULL);

	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static uint64_t backoff_cap(const struct or_retry_cfg *cfg, uint32_t retry)
{
	uint64_t cap = cfg->backoff_base_ms;

	/* The slow way on purpose: double until it passes max. */
	for (uint32_t i = 1; i < retry && cap < cfg->backoff_max_ms; i++)
		cap *= 2;
	return cap < cfg->backoff_max_ms ? cap : cfg->backoff_max_ms;
}

Test(retry, backoff_bounds)
{
	static const uint32_t bases[] = { 1, 25, 1000, 60000 };
	static const uint32_t maxes[] = { 1, 250, 600000 };
	static const uint32_t retries[] = { 1,  2,  3,  4,   5,	  8,	  16,	  31,
					    32, 33, 63, 64, 65, 1000, 1u << 31, UINT32_MAX };
	uint64_t seed = 7;

	for (size_t bi = 0; bi < 4; bi++) {
		for (size_t mi = 0; mi < 3; mi++) {
			struct or_retry_cfg cfg = base_cfg();

			cfg.backoff_base_ms = bases[bi];
			cfg.backoff_max_ms = maxes[mi] < bases[bi] ? bases[bi] : maxes[mi];
			for (size_t ri = 0; ri < sizeof(retries) / sizeof(retries[0]); ri++) {
				uint64_t cap = backoff_cap(&cfg, retries[ri]);

				cr_assert_eq(or_backoff_ms(&cfg, retries[ri], 0), 0);
				cr_assert_eq(or_backoff_ms(&cfg, retries[ri], UINT64_MAX), cap,
					     "base %u max %u retry %u: top not reachable",
					     cfg.backoff_base_ms, cfg.backoff_max_ms, retries[ri]);
				for (int k = 0; k < 2000; k++) {
					uint32_t ms = or_backoff_ms(&cfg, retries[ri], next(&seed));

					cr_assert_leq(ms, cap, "base %u max %u retry %u: %u",
						      cfg.backoff_base_ms, cfg.backoff_max_ms,
						      retries[ri], ms);
				}
			}
		}
	}
}

Test(retry, backoff_grows_then_stops)
{
	struct or_retry_cfg cfg = base_cfg(); /* 25 .. 250 */

	cr_expect_eq(or_backoff_ms(&cfg, 1, UINT64_MAX), 25);
	cr_expect_eq(or_backoff_ms(&cfg, 2, UINT64_MAX), 50);
	cr_expect_eq(or_backoff_ms(&cfg, 3, UINT64_MAX), 100);
	cr_expect_eq(or_backoff_ms(&cfg, 4, UINT64_MAX), 200);
	cr_expect_eq(or_backoff_ms(&cfg, 5, UINT64_MAX), 250);
	cr_expect_eq(or_backoff_ms(&cfg, 6, UINT64_MAX), 250);
	cr_expect_eq(or_backoff_ms(&cfg, UINT32_MAX, UINT64_MAX), 250);
	/* retry 0 is not in the contract; it behaves as the first retry. */
	cr_expect_eq(or_backoff_ms(&cfg, 0, UINT64_MAX), 25);
	/* The middle of rnd's range is the middle of the interval. */
	cr_expect_eq(or_backoff_ms(&cfg, 3, UINT64_MAX / 2 + 1), 50);
}

Test(retry, backoff_is_full_jitter)
{
	struct or_retry_cfg cfg = base_cfg();
	uint64_t seed = 99, sum = 0, n = 200000;
	uint32_t seen_lo = UINT32_MAX, seen_hi = 0;
	size_t hist[11] = { 0 };

	/* Retry 4: uniform over 0..200, mean 100, every value reachable. */
	for (uint64_t i = 0; i < n; i++) {
		uint32_t ms = or_backoff_ms(&cfg, 4, next(&seed));

		sum += ms;
		seen_lo = ms < seen_lo ? ms : seen_lo;
		seen_hi = ms > seen_hi ? ms : seen_hi;
		hist[ms / 20 < 10 ? ms / 20 : 10]++;
	}
	cr_expect_eq(seen_lo, 0);
	cr_expect_eq(seen_hi, 200);
	cr_expect(sum / n >= 98 && sum / n <= 102, "mean %lu", (unsigned long)(sum / n));
	for (int i = 0; i < 10; i++)
		cr_expect(hist[i] > n / 11 && hist[i] < n / 9, "bucket %d: %zu", i, hist[i]);
}
