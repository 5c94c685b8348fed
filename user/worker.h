/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Epoll workers, one per CPU by default. Every worker watches every pod
 * listener (EPOLLEXCLUSIVE, so one wakes per connection) and owns the
 * connections it accepts for their whole life. The main thread talks to
 * workers only through their command queues.
 */
#ifndef OR_WORKER_H
#define OR_WORKER_H

#include <pthread.h>
#include <stdint.h>

#include "ev.h"
#include "pod.h"

struct or_conn;
struct or_hconn;
struct or_tconn;
struct or_oconn;
struct or_pooled;
struct or_wcmd;

struct or_worker {
	unsigned int id;
	pthread_t thread;
	struct ev_loop *loop;
	int cmd_fd; /* eventfd: commands are waiting */
	struct ev_io cmd_io;
	pthread_mutex_t cmd_lock;
	struct or_wcmd *cmds;     /* queued by the main thread */
	struct or_lsn_reg *lsns;  /* listeners this worker watches */
	struct or_conn *conns;    /* L4 connections this worker owns */
	struct or_hconn *hconns;  /* HTTP connections this worker owns */
	struct or_tconn *tconns;  /* inbound mTLS tunnels this worker owns */
	struct or_oconn *oconns;  /* outbound mTLS tunnels this worker owns */
	struct or_pooled *pool;   /* idle upstream HTTP connections */
	unsigned int pool_len;
	uint64_t rng;             /* xorshift state for load balancing */
	struct ev_timer beat;     /* worker 0: the agent's heartbeat (or_workers_start) */
};

/*
 * Starts n workers. With beat, worker 0 calls beat(ctx) at once and then
 * every beat_ms: the heartbeat comes from a thread that serves connections,
 * so a long job on the main thread does not read as the agent being down.
 * Returns 0 or -errno (then none is running).
 */
int or_workers_start(unsigned int n, void (*beat)(void *ctx), void *ctx, uint64_t beat_ms);
/* Stops and joins every worker, closing their connections. */
void or_workers_stop(void);
unsigned int or_workers_count(void);

/* Every worker starts accepting on l (each takes a reference). 0 or -errno. */
int or_workers_add_listener(struct or_listener *l);
/* Every worker stops watching l and drops its reference. */
void or_workers_remove_listener(struct or_listener *l);

/*
 * The agent is draining: each worker closes idle keep-alive connections and
 * lets the others end after their response in flight (or_http_drain).
 */
void or_workers_drain(void);

uint64_t or_worker_rand(void *worker);

#endif
