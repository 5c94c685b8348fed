// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "proxy.h"
#include "tunnel_in.h"
#include "worker.h"

enum or_wcmd_type { OR_WCMD_ADD, OR_WCMD_DEL, OR_WCMD_STOP };

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
};

static struct or_worker *workers;
static unsigned int n_workers;

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

static void on_accept(struct ev_loop *loop, struct ev_io *io, unsigned int revents)
{
	struct or_lsn_reg *reg = container_of(io, struct or_lsn_reg, io);

	if (reg->dead)
		return;
	/* Bounded, so one busy pod cannot starve the others on this worker. */
	for (int i = 0; i < 64; i++) {
		int fd = accept4(reg->l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd == -1) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				or_warn("accept failed", "pod=%s err=\"%s\"", reg->l->pod->name,
					strerror(errno));
			return;
		}
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

int or_workers_start(unsigned int n)
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

void or_workers_remove_listener(struct or_listener *l)
{
	for (unsigned int i = 0; i < n_workers; i++)
		send_cmd(&workers[i], OR_WCMD_DEL, l);
}
