// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Outlier detection on a fake clock: `now` is a plain number the test moves
 * forward, so every ejection length and every transition is exact.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "breaker.h"
#include "pinned.h"

static const struct or_outlier_cfg cfg5 = {
	.consecutive_5xx = 5,
	.consecutive_connect_failures = 3,
	.interval_ms = 10000,
	.base_ejection_time_ms = 30000,
	.max_ejection_percent = 50,
};

/* n outcomes at `now`; every one but the last must leave it CLOSED with no ejection. */
static enum or_breaker_event record_n(struct or_breaker *b, enum or_outcome o, int n,
				      uint64_t now)
{
	enum or_breaker_event ev = OR_BREAKER_NONE;

	for (int i = 0; i < n; i++) {
		ev = or_breaker_record(b, o, &cfg5, now, true);
		if (i < n - 1)
			cr_assert_eq(b->state, OR_BREAKER_CLOSED, "ejected after %d of %d", i + 1,
				     n);
	}
	return ev;
}

static void expect_admit(struct or_breaker *b, uint64_t now, bool want, bool want_probe,
			 enum or_breaker_event want_ev, const char *what)
{
	enum or_breaker_event ev = (enum or_breaker_event)-1;
	bool probe = true;

	cr_expect_eq(or_breaker_admit(b, now, &probe, &ev), want, "%s: admit", what);
	cr_expect_eq(probe, want_probe, "%s: probe", what);
	cr_expect_eq(ev, want_ev, "%s: event %d", what, ev);
}

Test(breaker, init_is_closed_and_admits)
{
	struct or_breaker b;

	memset(&b, 0xff, sizeof(b));
	or_breaker_init(&b);
	cr_expect_eq(b.state, OR_BREAKER_CLOSED);
	cr_expect_eq(b.ejections, 0);
	cr_expect_not(b.probe_in_flight);
	expect_admit(&b, 0, true, false, OR_BREAKER_NONE, "closed");
	cr_expect(or_breaker_admit(&b, 1, NULL, NULL), "NULL out-parameters are fine");
	cr_expect_not(or_breaker_ejected(&b, 0));
}

Test(breaker, ejects_after_exactly_n_5xx)
{
	struct or_breaker b;

	or_breaker_init(&b);
	cr_expect_eq(record_n(&b, OR_OUTCOME_5XX, 4, 100), OR_BREAKER_CHANGED);
	cr_expect_eq(b.state, OR_BREAKER_CLOSED, "4 of 5 is not enough");
	cr_expect_eq(b.consecutive_5xx, 4);
	cr_expect_eq(or_breaker_record(&b, OR_OUTCOME_5XX, &cfg5, 100, true),
		     OR_BREAKER_EJECTED);
	cr_expect_eq(b.state, OR_BREAKER_OPEN);
	cr_expect_eq(b.ejections, 1);
	cr_expect_eq(b.until_ms, 100 + 30000);
	cr_expect_eq(b.consecutive_5xx, 0, "the run starts over");
	cr_expect(or_breaker_ejected(&b, 100));
	cr_expect(or_breaker_ejected(&b, 30099));
	cr_expect_not(or_breaker_ejected(&b, 30100), "until_ms itself is past the ejection");
}

Test(breaker, ejects_after_exactly_n_connect_failures)
{
	struct or_breaker b;

	or_breaker_init(&b);
	cr_expect_eq(record_n(&b, OR_OUTCOME_CONNECT_FAILURE, 2, 0), OR_BREAKER_CHANGED);
	cr_expect_eq(b.state, OR_BREAKER_CLOSED);
	cr_expect_eq(b.consecutive_connect_failures, 2);
	cr_expect_eq(or_breaker_record(&b, OR_OUTCOME_CONNECT_FAILURE, &cfg5, 0, true),
		     OR_BREAKER_EJECTED);
	cr_expect_eq(b.state, OR_BREAKER_OPEN);
	cr_expect_eq(b.consecutive_connect_failures, 0);
}

Test(breaker, success_in_between_resets)
{
	struct or_breaker b;

	or_breaker_init(&b);
	record_n(&b, OR_OUTCOME_5XX, 4, 0);
	cr_expect_eq(or_breaker_record(&b, OR_OUTCOME_SUCCESS, &cfg5, 0, true),
		     OR_BREAKER_CHANGED);
	cr_expect_eq(b.consecutive_5xx, 0);
	record_n(&b, OR_OUTCOME_5XX, 4, 0);
	cr_expect_eq(b.state, OR_BREAKER_CLOSED, "4 + success + 4 is not 5 in a row");

	or_breaker_init(&b);
	record_n(&b, OR_OUTCOME_CONNECT_FAILURE, 2, 0);
	or_breaker_record(&b, OR_OUTCOME_SUCCESS, &cfg5, 0, true);
	record_n(&b, OR_OUTCOME_CONNECT_FAILURE, 2, 0);
	cr_expect_eq(b.state, OR_BREAKER_CLOSED);
	cr_expect_eq(b.consecutive_connect_failures, 2);

	/* A success with nothing to reset changes nothing to mirror. */
	or_breaker_init(&b);
	cr_expect_eq(or_breaker_record(&b, OR_OUTCOME_SUCCESS, &cfg5, 0, true), OR_BREAKER_NONE);
}

Test(breaker, detectors_are_separate)
{
	struct or_breaker b;

	/* A connect failure does not end a 5xx run ... */
	or_breaker_init(&b);
	record_n(&b, OR_OUTCOME_5XX, 4, 0);
	or_breaker_record(&b, OR_OUTCOME_CONNECT_FAILURE, &cfg5, 0, true);
	cr_expect_eq(b.consecutive_5xx, 4);
	cr_expect_eq(or_breaker_record(&b, OR_OUTCOME_5XX, &cfg5, 0, true), OR_BREAKER_EJECTED);

	/* ... but a 5xx proves the connection worked and ends a connect-failure run. */
	or_breaker_init(&b);
	record_n(&b, OR_OUTCOME_CONNECT_FAILURE, 2, 0);
	or_breaker_record(&b, OR_OUTCOME_5XX, &cfg5, 0, true);
	cr_expect_eq(b.consecutive_connect_failures, 0);
	cr_expect_eq(b.consecutive_5xx, 1);
	or_breaker_record(&b, OR_OUTCOME_CONNECT_FAILURE, &cfg5, 0, true);
	cr_expect_eq(b.state, OR_BREAKER_CLOSED);
}

Test(breaker, zero_threshold_disables_a_detector)
{
	struct or_outlier_cfg cfg = cfg5;
	struct or_breaker b;

	cfg.consecutive_5xx = 0;
	or_breaker_init(&b);
	for (int i = 0; i < 1000; i++)
		cr_assert_neq(or_breaker_record(&b, OR_OUTCOME_5XX, &cfg, 0, true),
			      OR_BREAKER_EJECTED);
	cr_expect_eq(b.state, OR_BREAKER_CLOSED);
	cr_expect_eq(b.consecutive_5xx, 1000, "still counted");
	/* The other detector still works. */
	for (int i = 0; i < 3; i++)
		or_breaker_record(&b, OR_OUTCOME_CONNECT_FAILURE, &cfg, 0, true);
	cr_expect_eq(b.state, OR_BREAKER_OPEN);

	cfg = cfg5;
	cfg.consecutive_connect_failures = 0;
	or_breaker_init(&b);
	for (int i = 0; i < 1000; i++)
		or_breaker_record(&b, OR_OUTCOME_CONNECT_FAILURE, &cfg, 0, true);
	cr_expect_eq(b.state, OR_BREAKER_CLOSED);

	cfg.consecutive_5xx = 0;
	or_breaker_init(&b);
	for (int i = 0; i < 1000; i++) {
		or_breaker_record(&b, OR_OUTCOME_CONNECT_FAILURE, &cfg, 0, true);
		or_breaker_record(&b, OR_OUTCOME_5XX, &cfg, 0, true);
	}
	cr_expect_eq(b.state, OR_BREAKER_CLOSED, "both off: never ejected");
}

Test(breaker, threshold_of_one)
{
	struct or_outlier_cfg cfg = cfg5;
	struct or_breaker b;

	cfg.consecutive_5xx = 1;
	or_breaker_init(&b);
	cr_expect_eq(or_breaker_record(&b, OR_OUTCOME_5XX, &cfg, 0, true), OR_BREAKER_EJECTED);
}

Test(breaker, may_eject_false_keeps_it_closed)
{
	struct or_breaker b;

	or_breaker_init(&b);
	for (int i = 0; i < 20; i++)
		cr_assert_neq(or_breaker_record(&b, OR_OUTCOME_5XX, &cfg5, 0, false),
			      OR_BREAKER_EJECTED);
	cr_expect_eq(b.state, OR_BREAKER_CLOSED);
	cr_expect_eq(b.consecutive_5xx, 20, "the counters still count");
	cr_expect_eq(b.ejections, 0);
	expect_admit(&b, 0, true, false, OR_BREAKER_NONE, "not ejected");
	/* Once the limit allows it, the next failure ejects: the run is long enough. */
	cr_expect_eq(or_breaker_record(&b, OR_OUTCOME_5XX, &cfg5, 0, true), OR_BREAKER_EJECTED);
}

Test(breaker, admit_refuses_while_open_then_one_probe)
{
	struct or_breaker b;

	or_breaker_init(&b);
	record_n(&b, OR_OUTCOME_5XX, 5, 1000);
	cr_assert_eq(b.until_ms, 31000);
	expect_admit(&b, 1000, false, false, OR_BREAKER_NONE, "just ejected");
	expect_admit(&b, 30999, false, false, OR_BREAKER_NONE, "1 ms before the end");
	cr_expect_eq(b.state, OR_BREAKER_OPEN);

	expect_admit(&b, 31000, true, true, OR_BREAKER_PROBING, "ejection over: the probe");
	cr_expect_eq(b.state, OR_BREAKER_HALF_OPEN);
	cr_expect(b.probe_in_flight);
	cr_expect_not(or_breaker_ejected(&b, 31000));
	expect_admit(&b, 31000, false, false, OR_BREAKER_NONE, "second caller while probing");
	expect_admit(&b, 99999, false, false, OR_BREAKER_NONE, "much later, probe still out");
}

Test(breaker, probe_success_closes)
{
	struct or_breaker b;

	or_breaker_init(&b);
	record_n(&b, OR_OUTCOME_5XX, 5, 0);
	cr_assert(or_breaker_admit(&b, 30000, NULL, NULL));
	cr_expect_eq(or_breaker_record(&b, OR_OUTCOME_SUCCESS, &cfg5, 30010, true),
		     OR_BREAKER_RESTORED);
	cr_expect_eq(b.state, OR_BREAKER_CLOSED);
	cr_expect_not(b.probe_in_flight);
	cr_expect_eq(b.ejections, 1, "the multiplier stays until it decays");
	cr_expect_eq(b.last_decay_ms, 30010);
	expect_admit(&b, 30011, true, false, OR_BREAKER_NONE, "closed again");
	expect_admit(&b, 30011, true, false, OR_BREAKER_NONE, "everyone, not just one");
}

Test(breaker, probe_failure_ejects_for_longer)
{
	struct or_breaker b;

	or_breaker_init(&b);
	record_n(&b, OR_OUTCOME_5XX, 5, 0);
	cr_assert_eq(b.until_ms, 30000);

	/* Probe fails: second ejection, 2 x base. */
	cr_assert(or_breaker_admit(&b, 30000, NULL, NULL));
	cr_expect_eq(or_breaker_record(&b, OR_OUTCOME_5XX, &cfg5, 30005, true),
		     OR_BREAKER_REEJECTED);
	cr_expect_eq(b.state, OR_BREAKER_OPEN);
	cr_expect_eq(b.ejections, 2);
	cr_expect_eq(b.until_ms, 30005 + 60000);
	cr_expect_not(b.probe_in_flight);

	/* Third: a connect failure is a failed probe too, 3 x base. */
	cr_expect_not(or_breaker_admit(&b, 90004, NULL, NULL));
	cr_assert(or_breaker_admit(&b, 90005, NULL, NULL));
	cr_expect_eq(or_breaker_record(&b, OR_OUTCOME_CONNECT_FAILURE, &cfg5, 90005, true),
		     OR_BREAKER_REEJECTED);
	cr_expect_eq(b.ejections, 3);
	cr_expect_eq(b.until_ms, 90005 + 90000);
}

Test(breaker, probe_verdict_ignores_may_eject)
{
	struct or_breaker b;

	or_breaker_init(&b);
	record_n(&b, OR_OUTCOME_5XX, 5, 0);
	cr_assert(or_breaker_admit(&b, 30000, NULL, NULL));
	/* It was ejected already; the percentage limit does not get to restore it. */
	cr_expect_eq(or_breaker_record(&b, OR_OUTCOME_5XX, &cfg5, 30000, false),
		     OR_BREAKER_REEJECTED);
	cr_expect_eq(b.state, OR_BREAKER_OPEN);
}

Test(breaker, ejection_time_is_base_times_ejections)
{
	struct or_breaker b;
	uint64_t now = 0;

	or_breaker_init(&b);
	record_n(&b, OR_OUTCOME_5XX, 5, now);
	for (uint32_t k = 1; k <= 6; k++) {
		cr_assert_eq(b.ejections, k);
		cr_assert_eq(b.until_ms - now, (uint64_t)k * 30000, "ejection %u", k);
		now = b.until_ms;
		cr_assert(or_breaker_admit(&b, now, NULL, NULL));
		or_breaker_record(&b, OR_OUTCOME_5XX, &cfg5, now, true);
	}
}

Test(breaker, outcomes_while_open_count_but_do_not_eject_twice)
{
	struct or_breaker b;
	enum or_breaker_event ev;

	or_breaker_init(&b);
	record_n(&b, OR_OUTCOME_5XX, 5, 0);
	/* Requests admitted before the ejection finish now. */
	for (int i = 0; i < 10; i++) {
		ev = or_breaker_record(&b, OR_OUTCOME_5XX, &cfg5, 100, true);
		cr_assert_eq(ev, OR_BREAKER_CHANGED);
	}
	cr_expect_eq(b.state, OR_BREAKER_OPEN);
	cr_expect_eq(b.ejections, 1);
	cr_expect_eq(b.until_ms, 30000, "the ejection is not extended");
	cr_expect_eq(b.consecutive_5xx, 10);
	cr_expect_eq(or_breaker_record(&b, OR_OUTCOME_SUCCESS, &cfg5, 100, true),
		     OR_BREAKER_CHANGED);
	cr_expect_eq(b.state, OR_BREAKER_OPEN, "a late success does not restore it");

	/* HALF_OPEN before its probe is out: the same. */
	cr_assert_eq(or_breaker_tick(&b, &cfg5, 30000), OR_BREAKER_PROBING);
	for (int i = 0; i < 10; i++)
		or_breaker_record(&b, OR_OUTCOME_5XX, &cfg5, 30000, true);
	cr_expect_eq(b.state, OR_BREAKER_HALF_OPEN);
	cr_expect_eq(b.ejections, 1);
	expect_admit(&b, 30000, true, true, OR_BREAKER_NONE, "the probe");
}

Test(breaker, tick_opens_the_way_for_a_probe)
{
	struct or_breaker b;

	or_breaker_init(&b);
	record_n(&b, OR_OUTCOME_5XX, 5, 0);
	cr_expect_eq(or_breaker_tick(&b, &cfg5, 29999), OR_BREAKER_NONE);
	cr_expect_eq(b.state, OR_BREAKER_OPEN);
	cr_expect_eq(or_breaker_tick(&b, &cfg5, 30000), OR_BREAKER_PROBING);
	cr_expect_eq(b.state, OR_BREAKER_HALF_OPEN);
	cr_expect_not(or_breaker_ejected(&b, 30000));
	cr_expect_eq(or_breaker_tick(&b, &cfg5, 40000), OR_BREAKER_NONE, "waits for its probe");
	/* The transition was the tick's: admit reports no second PROBING. */
	expect_admit(&b, 40000, true, true, OR_BREAKER_NONE, "probe after tick");
	expect_admit(&b, 40000, false, false, OR_BREAKER_NONE, "only one");
	cr_expect_eq(or_breaker_tick(&b, &cfg5, 90000), OR_BREAKER_NONE, "probe out: no change");
	cr_expect_eq(b.state, OR_BREAKER_HALF_OPEN);
}

Test(breaker, multiplier_decays_while_healthy)
{
	struct or_breaker b;
	uint64_t now = 0;

	or_breaker_init(&b);
	cr_expect_eq(or_breaker_tick(&b, &cfg5, 1000000), OR_BREAKER_NONE, "nothing to decay");

	/* Three ejections in a row, then healthy. */
	record_n(&b, OR_OUTCOME_5XX, 5, now);
	for (int i = 0; i < 2; i++) {
		now = b.until_ms;
		cr_assert(or_breaker_admit(&b, now, NULL, NULL));
		or_breaker_record(&b, OR_OUTCOME_5XX, &cfg5, now, true);
	}
	cr_assert_eq(b.ejections, 3);
	cr_expect_eq(or_breaker_tick(&b, &cfg5, b.until_ms + 50000), OR_BREAKER_PROBING,
		     "no decay while ejected");
	cr_expect_eq(b.ejections, 3);
	now = b.until_ms + 50000;
	cr_assert(or_breaker_admit(&b, now, NULL, NULL));
	cr_assert_eq(or_breaker_record(&b, OR_OUTCOME_SUCCESS, &cfg5, now, true),
		     OR_BREAKER_RESTORED);

	/* One step per whole interval since the last step. */
	cr_expect_eq(or_breaker_tick(&b, &cfg5, now + 9999), OR_BREAKER_NONE);
	cr_expect_eq(b.ejections, 3);
	cr_expect_eq(or_breaker_tick(&b, &cfg5, now + 10000), OR_BREAKER_CHANGED);
	cr_expect_eq(b.ejections, 2);
	cr_expect_eq(b.last_decay_ms, now + 10000);
	cr_expect_eq(or_breaker_tick(&b, &cfg5, now + 15000), OR_BREAKER_NONE);
	cr_expect_eq(or_breaker_tick(&b, &cfg5, now + 20000), OR_BREAKER_CHANGED);
	cr_expect_eq(b.ejections, 1);

	/* Ejected again now: 2 x base, not 4 x. */
	record_n(&b, OR_OUTCOME_5XX, 5, now + 20000);
	cr_expect_eq(b.ejections, 2);
	cr_expect_eq(b.until_ms, now + 20000 + 60000);

	/* And all the way down to 0, where it stays. */
	now = b.until_ms;
	cr_assert(or_breaker_admit(&b, now, NULL, NULL));
	or_breaker_record(&b, OR_OUTCOME_SUCCESS, &cfg5, now, true);
	cr_expect_eq(or_breaker_tick(&b, &cfg5, now + 10000), OR_BREAKER_CHANGED);
	cr_expect_eq(or_breaker_tick(&b, &cfg5, now + 20000), OR_BREAKER_CHANGED);
	cr_expect_eq(b.ejections, 0);
	cr_expect_eq(or_breaker_tick(&b, &cfg5, now + 30000), OR_BREAKER_NONE);
	cr_expect_eq(b.ejections, 0);
	/* A clock behind last_decay_ms is not an interval. */
	cr_expect_eq(or_breaker_tick(&b, &cfg5, 0), OR_BREAKER_NONE);
}

Test(breaker, no_overflow_at_the_far_end)
{
	struct or_outlier_cfg cfg = cfg5;
	struct or_breaker b;

	cfg.base_ejection_time_ms = 86400000;
	or_breaker_init(&b);
	b.ejections = UINT32_MAX - 1;
	record_n(&b, OR_OUTCOME_5XX, 5, UINT64_MAX - 10);
	cr_expect_eq(b.ejections, UINT32_MAX);
	cr_expect_eq(b.until_ms, UINT64_MAX, "saturates, does not wrap into the past");
	cr_expect(or_breaker_ejected(&b, UINT64_MAX - 1));

	/* And the multiplier itself does not wrap. */
	cr_assert(or_breaker_admit(&b, UINT64_MAX, NULL, NULL));
	or_breaker_record(&b, OR_OUTCOME_5XX, &cfg, UINT64_MAX, true);
	cr_expect_eq(b.ejections, UINT32_MAX);

	or_breaker_init(&b);
	b.consecutive_connect_failures = UINT32_MAX;
	cfg.consecutive_connect_failures = 0;
	or_breaker_record(&b, OR_OUTCOME_CONNECT_FAILURE, &cfg, 0, true);
	cr_expect_eq(b.consecutive_connect_failures, UINT32_MAX);
}

struct eject_case {
	size_t ejected, total;
	uint32_t pct;
	bool want;
};

Test(breaker, may_eject_table)
{
	static const struct eject_case cases[] = {
		{ 0, 2, 0, false },   /* 0%: never */
		{ 0, 100, 0, false },
		{ 0, 2, 50, true },   /* 50% of 2 = 1 */
		{ 1, 2, 50, false },
		{ 0, 3, 50, true },   /* 50% of 3 = 1 (rounded down) */
		{ 1, 3, 50, false },
		{ 0, 4, 50, true },   /* 50% of 4 = 2 */
		{ 1, 4, 50, true },
		{ 2, 4, 50, false },
		{ 0, 2, 100, true },  /* 100% of 2 = 2 */
		{ 1, 2, 100, true },
		{ 2, 2, 100, false }, /* nothing left to eject */
		{ 0, 3, 10, true },   /* 10% of 3 = 0, but always at least one */
		{ 1, 3, 10, false },
		{ 0, 1, 1, true },    /* a lone endpoint may be ejected */
		{ 0, 1, 100, true },
		{ 1, 1, 100, false },
		{ 0, 0, 100, false }, /* no endpoints */
		{ 9, 10, 90, false }, /* at the limit */
		{ 8, 10, 90, true },
		{ 5, 3, 100, false }, /* more ejected than there are: no */
		{ 1, 2, 200, true },  /* over 100 counts as 100 */
		{ 2, 2, 200, false },
		{ 63, 64, 99, false }, /* 99% of 64 = 63 */
		{ 62, 64, 99, true },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct eject_case *c = &cases[i];

		cr_expect_eq(or_outlier_may_eject(c->ejected, c->total, c->pct), c->want,
			     "%zu of %zu ejected, max %u%%: want %d", c->ejected, c->total, c->pct,
			     c->want);
	}
	cr_expect(or_outlier_may_eject(0, SIZE_MAX, 50), "huge totals do not overflow");
	cr_expect_not(or_outlier_may_eject(SIZE_MAX / 2, SIZE_MAX, 50));
}

Test(breaker, state_names)
{
	cr_expect_str_eq(or_breaker_state_name(OR_BREAKER_CLOSED), "closed");
	cr_expect_str_eq(or_breaker_state_name(OR_BREAKER_OPEN), "open");
	cr_expect_str_eq(or_breaker_state_name(OR_BREAKER_HALF_OPEN), "half-open");
	cr_expect_str_eq(or_breaker_state_name((enum or_breaker_state)7), "unknown");
}
