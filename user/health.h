/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Endpoint health: one outlier-detection breaker per endpoint address,
 * shared by every service port that routes to it, kept for the agent's
 * life, and mirrored into the pinned or_breakers map on every change so
 * the kernel can skip ejected endpoints and fail fast when none is left.
 */
#ifndef OR_HEALTH_H
#define OR_HEALTH_H

#include <stdbool.h>
#include <stdint.h>

#include "breaker.h"
#include "routes.h"

/* The endpoint's health record, created on first use. NULL on ENOMEM. */
struct or_health *or_health_get(const struct or_ip *ip, uint16_t port);

/* Where to mirror states (the or_breakers fd), once the maps are loaded. */
void or_health_set_map(int breakers_fd);

/* Side-effect free: not ejected, and not half-open with its probe out. */
bool or_health_usable(struct or_health *h, uint64_t now_ms);

/*
 * Takes the endpoint for one request/connection: false when it may not
 * (ejected, or the probe is already out). *probe tells the caller its
 * outcome decides a half-open endpoint.
 */
bool or_health_admit(struct or_health *h, uint64_t now_ms, bool *probe);

/*
 * Records the outcome of a try on endpoint `idx` of `rt` (whose policy and
 * metrics apply); ejects within max_ejection_percent of rt's endpoints.
 */
void or_health_report(struct or_route *rt, int idx, enum or_outcome outcome, uint64_t now_ms);

/* Housekeeping for every endpoint (main thread, every second). */
void or_health_tick(uint64_t now_ms);

/*
 * Brings or_breakers in line with r: every endpoint of r has an entry (a
 * new one as closed), and endpoints no route has any more lose theirs.
 */
void or_health_sync(const struct or_routes *r);

void or_health_free_all(void);

#endif
