// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* The only file that calls epoll_*. */
#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "ev.h"

#define EV_BATCH 256

struct ev_loop {
	int epfd;
	bool stop;
	uint64_t now_ms;
	struct ev_timer **heap; /* min-heap on deadline_ms */
	size_t heap_len, heap_cap;
	struct ev_deferred *deferred;
};

uint64_t ev_clock_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct ev_loop *ev_loop_new(void)
{
	struct ev_loop *loop = calloc(1, sizeof(*loop));

	if (!loop)
		return NULL;
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (loop->epfd == -1) {
		free(loop);
		return NULL;
	}
	loop->now_ms = ev_clock_ms();
	return loop;
}

void ev_loop_free(struct ev_loop *loop)
{
	if (!loop)
		return;
	close(loop->epfd);
	free(loop->heap);
	free(loop);
}

uint64_t ev_now_ms(struct ev_loop *loop)
{
	return loop->now_ms;
}

void ev_loop_stop(struct ev_loop *loop)
{
	loop->stop = true;
}

static uint32_t to_epoll(unsigned int events)
{
	uint32_t e = 0;

	if (events & EV_READ)
		e |= EPOLLIN;
	/* EPOLLEXCLUSIVE refuses EPOLLRDHUP; listeners do not need it. */
	if ((events & EV_READ) && !(events & EV_EXCLUSIVE))
		e |= EPOLLRDHUP;
	if (events & EV_WRITE)
		e |= EPOLLOUT;
	if (events & EV_EXCLUSIVE)
		e |= EPOLLEXCLUSIVE;
	return e;
}

int ev_io_add(struct ev_loop *loop, struct ev_io *io, int fd, unsigned int events, ev_io_cb cb)
{
	struct epoll_event ev = { .events = to_epoll(events), .data.ptr = io };

	io->fd = fd;
	io->cb = cb;
	io->events = events & (EV_READ | EV_WRITE);
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) == -1)
		return -errno;
	return 0;
}

int ev_io_set(struct ev_loop *loop, struct ev_io *io, unsigned int events)
{
	struct epoll_event ev = { .events = to_epoll(events), .data.ptr = io };

	if (io->events == events)
		return 0;
	if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, io->fd, &ev) == -1)
		return -errno;
	io->events = events;
	return 0;
}

int ev_io_del(struct ev_loop *loop, struct ev_io *io)
{
	if (epoll_ctl(loop->epfd, EPOLL_CTL_DEL, io->fd, NULL) == -1)
		return -errno;
	return 0;
}

/* Timers: a binary min-heap of pointers, each timer knowing its index. */
static void heap_swap(struct ev_loop *loop, size_t a, size_t b)
{
	struct ev_timer *t = loop->heap[a];

	loop->heap[a] = loop->heap[b];
	loop->heap[b] = t;
	loop->heap[a]->heap_idx = a;
	loop->heap[b]->heap_idx = b;
}

static void heap_up(struct ev_loop *loop, size_t i)
{
	while (i > 0) {
		size_t parent = (i - 1) / 2;

		if (loop->heap[parent]->deadline_ms <= loop->heap[i]->deadline_ms)
			break;
		heap_swap(loop, i, parent);
		i = parent;
	}
}

static void heap_down(struct ev_loop *loop, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;

		if (l < loop->heap_len && loop->heap[l]->deadline_ms < loop->heap[m]->deadline_ms)
			m = l;
		if (r < loop->heap_len && loop->heap[r]->deadline_ms < loop->heap[m]->deadline_ms)
			m = r;
		if (m == i)
			return;
		heap_swap(loop, i, m);
		i = m;
	}
}

void ev_timer_init(struct ev_timer *t, ev_timer_cb cb)
{
	t->cb = cb;
	t->heap_idx = SIZE_MAX;
	t->deadline_ms = 0;
}

bool ev_timer_active(const struct ev_timer *t)
{
	return t->heap_idx != SIZE_MAX;
}

void ev_timer_stop(struct ev_loop *loop, struct ev_timer *t)
{
	size_t i = t->heap_idx;

	if (i == SIZE_MAX)
		return;
	loop->heap_len--;
	if (i != loop->heap_len) {
		heap_swap(loop, i, loop->heap_len);
		heap_down(loop, i);
		heap_up(loop, i);
	}
	t->heap_idx = SIZE_MAX;
}

int ev_timer_start(struct ev_loop *loop, struct ev_timer *t, uint64_t after_ms)
{
	ev_timer_stop(loop, t);
	if (loop->heap_len == loop->heap_cap) {
		size_t cap = loop->heap_cap ? loop->heap_cap * 2 : 64;
		struct ev_timer **h = realloc(loop->heap, cap * sizeof(*h));

		if (!h)
			return -ENOMEM;
		loop->heap = h;
		loop->heap_cap = cap;
	}
	t->deadline_ms = loop->now_ms + after_ms;
	t->heap_idx = loop->heap_len;
	loop->heap[loop->heap_len++] = t;
	heap_up(loop, t->heap_idx);
	return 0;
}

void ev_defer(struct ev_loop *loop, struct ev_deferred *d, void (*fn)(struct ev_deferred *))
{
	d->fn = fn;
	d->next = loop->deferred;
	loop->deferred = d;
}

void ev_run_deferred(struct ev_loop *loop)
{
	while (loop->deferred) {
		struct ev_deferred *d = loop->deferred;

		loop->deferred = d->next;
		d->fn(d);
	}
}

static void run_timers(struct ev_loop *loop)
{
	while (loop->heap_len && loop->heap[0]->deadline_ms <= loop->now_ms) {
		struct ev_timer *t = loop->heap[0];

		ev_timer_stop(loop, t);
		t->cb(loop, t);
	}
}

int ev_run(struct ev_loop *loop)
{
	struct epoll_event evs[EV_BATCH];

	loop->stop = false;
	while (!loop->stop) {
		int timeout = -1;
		int n;

		if (loop->heap_len) {
			uint64_t d = loop->heap[0]->deadline_ms;

			timeout = d > loop->now_ms ? (int)(d - loop->now_ms) : 0;
		}
		n = epoll_wait(loop->epfd, evs, EV_BATCH, timeout);
		if (n == -1 && errno != EINTR)
			return -errno;
		loop->now_ms = ev_clock_ms();
		for (int i = 0; i < n; i++) {
			struct ev_io *io = evs[i].data.ptr;
			unsigned int rev = 0;

			if (evs[i].events & (EPOLLIN | EPOLLRDHUP))
				rev |= EV_READ;
			if (evs[i].events & EPOLLOUT)
				rev |= EV_WRITE;
			if (evs[i].events & (EPOLLERR | EPOLLHUP))
				rev |= EV_ERROR | EV_READ | EV_WRITE;
			io->cb(loop, io, rev);
		}
		ev_run_deferred(loop);
		run_timers(loop);
		ev_run_deferred(loop);
	}
	return 0;
}
