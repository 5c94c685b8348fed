/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The node's admin endpoints, served from the main thread's event loop:
 *   admin_address (default 127.0.0.1:15020): GET /metrics (Prometheus text)
 *   ready_address (default 127.0.0.1:15021): GET /healthz/ready (200 / 503)
 * Anything else: 404; a malformed request: 400; every response closes the
 * connection. Requests are parsed with http-parser, bounded in size and time.
 */
#ifndef OR_ADMIN_H
#define OR_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "ev.h"
#include "metrics.h"

struct or_admin;

struct or_admin_hooks {
	/* true when the agent is ready (programs loaded, config applied). */
	bool (*ready)(void *ctx);
	/* fills the node-wide part of /metrics. */
	void (*node_metrics)(void *ctx, struct or_metrics_node *out);
	/*
	 * Optional: a listener a previous agent handed over for the metrics
	 * (true) or ready address, or -1 to bind one. Used when it is bound
	 * to the configured address; owned by the admin afterwards.
	 */
	int (*inherited_fd)(void *ctx, bool metrics);
	void *ctx;
};

/*
 * Listens on both addresses and serves them on loop. Returns 0 and *out,
 * or -errno (with a log line naming the address that failed).
 */
int or_admin_start(struct ev_loop *loop, const struct or_ip *admin_ip, uint16_t admin_port,
		   const struct or_ip *ready_ip, uint16_t ready_port,
		   const struct or_admin_hooks *hooks, struct or_admin **out);
/* The listening socket of the metrics (true) or ready address, or -1; stays a's. */
int or_admin_listener_fd(const struct or_admin *a, bool metrics);
/*
 * Stops listening and closes every client. The memory is freed through
 * ev_defer(): a caller whose loop has stopped runs ev_run_deferred() after.
 */
void or_admin_stop(struct or_admin *a);

/* Request parsing, exposed for the fuzz target. */
enum or_admin_parse {
	OR_ADMIN_INCOMPLETE, /* need more bytes */
	OR_ADMIN_OK,         /* method and path filled in */
	OR_ADMIN_BAD,        /* malformed: answer 400 */
	OR_ADMIN_TOO_LARGE,  /* over the size bound: answer 431 */
};
struct or_admin_req {
	char method[16];
	char path[256];
};
enum or_admin_parse or_admin_parse_request(const char *buf, size_t len, struct or_admin_req *req);

#endif
