// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http_proxy.h"
#include "log.h"
#include "metrics.h"
#include "proxy.h"
#include "tunnel_in.h"
#include "worker.h"


enum or_wcmd_type { OR_WCMD_ADD, OR_WCMD_DEL, OR_WCMD_DRAIN, OR_WCMD_STOP };

struct or_wcmd {
	enum or_wcmd_type type;
	struct or_listener *l; /* ADD: a reference for the worker to keep */
	struct or_wcmd *next;
};

/* One worker's registration of one listener. */
struct or_lsn_reg {
	struct ev_io io;
	struct or_listener *l;
	struct or_worker *w;
	struct or_lsn_reg *next;
	struct ev_deferred defer;
	int dead;
	/* Accepting paused (out of fds or memory): the timer puts the listener back. */
	struct ev_timer pause;
	uint32_t pause_ms; /* the next pause; doubles while it keeps failing */
	bool paused;
};

static struct or_worker *workers;
static unsigned int n_workers;
static void (*beat_fn)(void *ctx);
static void *beat_ctx;
static uint64_t beat_every_ms;

static void on_beat(struct ev_loop *loop, struct ev_timer *t)
{
	beat_fn(beat_ctx);
	ev_timer_start(loop, t, beat_every_ms);
}

unsigned int or_workers_count(void)
{
	return n_workers;
}

uint64_t or_worker_rand(void *worker)
{
	struct or_worker *w = worker;
	uint64_t x = w->rng;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	w->rng = x;
	return x * 0x2545F4914F6CDD1Dull;
}

#define ACCEPT_PAUSE_MIN_MS 100
#define ACCEPT_PAUSE_MAX_MS 1000
#define ACCEPT_WARN_EVERY_MS 5000

static void on_accept(struct ev_loop *loop, struct ev_io *io, unsigned int revents);

/* Accepting again after a pause: the listener goes back under watch. */
static void on_accept_pause_end(struct ev_loop *loop, struct ev_timer *t)
{
	struct or_lsn_reg *reg = container_of(t, struct or_lsn_reg, pause);

	reg->paused = false;
	if (reg->dead)
		return;
	/* EPOLLEXCLUSIVE cannot be modified, only added: the pause removed it. */
	if (ev_io_add(loop, &reg->io, reg->l->fd, EV_READ | EV_EXCLUSIVE, on_accept)) {
		reg->paused = true;
		ev_timer_start(loop, &reg->pause, reg->pause_ms);
	}
}

/*
 * accept() failed for want of fds or memory. The listener is level-
 * triggered, so it would wake us again at once: stop watching it for a
 * while (100 ms, doubling to 1 s while it keeps failing). Connections wait
 * in the kernel's backlog meanwhile and are taken when we watch again.
 */
static void pause_accept(struct ev_loop *loop, struct or_lsn_reg *reg, int err)
{
	static _Atomic uint64_t warned_ms, pauses;
	uint64_t now = ev_now_ms(loop), last = atomic_load(&warned_ms);
	uint64_t n = atomic_fetch_add(&pauses, 1) + 1;

	or_overload_count(OR_OVERLOAD_EMFILE);
	if (!reg->pause_ms)
		reg->pause_ms = ACCEPT_PAUSE_MIN_MS;
	/* Once per episode, and at most every few seconds across workers. */
	if ((!last || now - last >= ACCEPT_WARN_EVERY_MS) &&
	    atomic_compare_exchange_strong(&warned_ms, &last, now))
		or_warn("cannot accept, pausing the listener", "pod=%s worker=%u err=\"%s\" "
			"pause_ms=%u pauses=%llu", reg->l->pod->name, reg->w->id, strerror(err),
			reg->pause_ms, (unsigned long long)n);
	ev_timer_init(&reg->pause, on_accept_pause_end);
	ev_io_del(loop, &reg->io);
	if (ev_timer_start(loop, &reg->pause, reg->pause_ms)) {
		/* No timer: better a busy listener than a dead one. */
		ev_io_add(loop, &reg->io, reg->l->fd, EV_READ | EV_EXCLUSIVE, on_accept);
		return;
	}
	reg->paused = true;
	reg->pause_ms = reg->pause_ms * 2 > ACCEPT_PAUSE_MAX_MS ? ACCEPT_PAUSE_MAX_MS
								: reg->pause_ms * 2;
}

static void on_accept(struct ev_loop *loop, struct ev_io *io, unsigned int revents)
{
	struct or_lsn_reg *reg = container_of(io, struct or_lsn_reg, io);

	if (reg->dead || reg->paused)
		return;
	/* Bounded, so one busy pod cannot starve the others on this worker. */
	for (int i = 0; i < 64; i++) {
		int fd = accept4(reg->l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd == -1) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM)
				pause_accept(loop, reg, errno);
			else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				or_warn("accept failed", "pod=%s err=\"%s\"", reg->l->pod->name,
					strerror(errno));
			return;
		}
		reg->pause_ms = 0; /* it worked: the next episode starts short again */
		if (reg->l->kind == OR_LSN_TUNNEL)
			or_tunnel_accept(reg->w, reg->l, fd);
		else if (reg->l->kind == OR_LSN_INBOUND)
			or_proxy_accept_inbound(reg->w, reg->l, fd);
		else
			or_proxy_accept(reg->w, reg->l, fd);
	}
}

static void free_reg(struct ev_deferred *d)
{
	struct or_lsn_reg *reg = container_of(d, struct or_lsn_reg, defer);

	if (reg->paused)
		ev_timer_stop(reg->w->loop, &reg->pause);
	or_listener_put(reg->l);
	free(reg);
}

static void run_cmd(struct or_worker *w, struct or_wcmd *c)
{
	struct or_lsn_reg **pp, *reg;
	int err;

	switch (c->type) {
	case OR_WCMD_ADD:
		reg = calloc(1, sizeof(*reg));
		if (!reg) {
			or_listener_put(c->l);
			break;
		}
		reg->l = c->l;
		reg->w = w;
		err = ev_io_add(w->loop, &reg->io, c->l->fd, EV_READ | EV_EXCLUSIVE, on_accept);
		if (err) {
			or_error("cannot watch listener", "pod=%s worker=%u err=\"%s\"",
				 c->l->pod->name, w->id, strerror(-err));
			or_listener_put(c->l);
			free(reg);
			break;
		}
		reg->next = w->lsns;
		w->lsns = reg;
		break;
	case OR_WCMD_DEL:
		for (pp = &w->lsns; *pp; pp = &(*pp)->next) {
			reg = *pp;
			if (reg->l != c->l)
				continue;
			*pp = reg->next;
			ev_io_del(w->loop, &reg->io);
			reg->dead = 1;
			ev_defer(w->loop, &reg->defer, free_reg);
			break;
		}
		break;
	case OR_WCMD_DRAIN:
		or_http_drain(w);
		break;
	case OR_WCMD_STOP:
		ev_loop_stop(w->loop);
		break;
	}
}

static void on_cmd(struct ev_loop *loop, struct ev_io *io, unsigned int revents)
{
	struct or_worker *w = container_of(io, struct or_worker, cmd_io);
	struct or_wcmd *list, *rev = NULL;
	uint64_t n;

	if (read(w->cmd_fd, &n, sizeof(n)) == -1 && errno != EAGAIN)
		or_warn("worker command read failed", "err=\"%s\"", strerror(errno));
	pthread_mutex_lock(&w->cmd_lock);
	list = w->cmds;
	w->cmds = NULL;
	pthread_mutex_unlock(&w->cmd_lock);
	/* Queued newest first: run them in the order they were sent. */
	while (list) {
		struct or_wcmd *next = list->next;

		list->next = rev;
		rev = list;
		list = next;
	}
	while (rev) {
		struct or_wcmd *next = rev->next;

		run_cmd(w, rev);
		free(rev);
		rev = next;
	}
}

static int send_cmd(struct or_worker *w, enum or_wcmd_type type, struct or_listener *l)
{
	struct or_wcmd *c = calloc(1, sizeof(*c));
	uint64_t one = 1;

	if (!c)
		return -ENOMEM;
	c->type = type;
	c->l = l;
	pthread_mutex_lock(&w->cmd_lock);
	c->next = w->cmds;
	w->cmds = c;
	pthread_mutex_unlock(&w->cmd_lock);
	if (write(w->cmd_fd, &one, sizeof(one)) == -1)
		return -errno;
	return 0;
}

static void *worker_main(void *arg)
{
	struct or_worker *w = arg;
	int err;

	err = ev_run(w->loop);
	if (err)
		or_error("worker loop failed", "worker=%u err=\"%s\"", w->id, strerror(-err));
	return NULL;
}

static void worker_fini(struct or_worker *w)
{
	while (w->lsns) {
		struct or_lsn_reg *reg = w->lsns;

		w->lsns = reg->next;
		or_listener_put(reg->l);
		free(reg);
	}
	while (w->cmds) {
		struct or_wcmd *c = w->cmds;

		w->cmds = c->next;
		if (c->type == OR_WCMD_ADD)
			or_listener_put(c->l);
		free(c);
	}
	if (w->cmd_fd != -1)
		close(w->cmd_fd);
	ev_loop_free(w->loop);
	pthread_mutex_destroy(&w->cmd_lock);
}

int or_workers_start(unsigned int n, void (*beat)(void *ctx), void *ctx, uint64_t beat_ms)
{
	struct timespec ts;
	unsigned int i;
	int err;

	workers = calloc(n, sizeof(*workers));
	if (!workers)
		return -ENOMEM;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	for (i = 0; i < n; i++) {
		struct or_worker *w = &workers[i];

		w->id = i;
		w->rng = (uint64_t)ts.tv_nsec * 2654435761u + i + 1;
		pthread_mutex_init(&w->cmd_lock, NULL);
		w->cmd_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		w->loop = ev_loop_new();
		if (w->cmd_fd == -1 || !w->loop) {
			err = -errno;
			goto fail;
		}
		err = ev_io_add(w->loop, &w->cmd_io, w->cmd_fd, EV_READ, on_cmd);
		if (err)
			goto fail;
		if (i == 0 && beat) {
			beat_fn = beat;
			beat_ctx = ctx;
			beat_every_ms = beat_ms;
			ev_timer_init(&w->beat, on_beat);
			ev_timer_start(w->loop, &w->beat, 0); /* before the thread runs */
		}
		err = -pthread_create(&w->thread, NULL, worker_main, w);
		if (err)
			goto fail;
		n_workers++;
	}
	return 0;
fail:
	worker_fini(&workers[i]);
	or_workers_stop();
	return err;
}

void or_workers_stop(void)
{
	for (unsigned int i = 0; i < n_workers; i++)
		send_cmd(&workers[i], OR_WCMD_STOP, NULL);
	for (unsigned int i = 0; i < n_workers; i++) {
		pthread_join(workers[i].thread, NULL);
		or_proxy_close_all(&workers[i]);
		worker_fini(&workers[i]);
	}
	free(workers);
	workers = NULL;
	n_workers = 0;
}

int or_workers_add_listener(struct or_listener *l)
{
	for (unsigned int i = 0; i < n_workers; i++) {
		int err;

		or_listener_get(l);
		err = send_cmd(&workers[i], OR_WCMD_ADD, l);
		if (err == -ENOMEM) {
			or_listener_put(l);
			return err;
		}
	}
	return 0;
}

void or_workers_drain(void)
{
	for (unsigned int i = 0; i < n_workers; i++)
		send_cmd(&workers[i], OR_WCMD_DRAIN, NULL);
}

void or_workers_remove_listener(struct or_listener *l)
{
	for (unsigned int i = 0; i < n_workers; i++)
		send_cmd(&workers[i], OR_WCMD_DEL, l);
}
