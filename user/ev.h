/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * A small event loop: file events, one-shot timers, deferred frees. One loop
 * per thread; only ev.c calls epoll_*. Level-triggered.
 */
#ifndef OR_EV_H
#define OR_EV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EV_READ 0x1
#define EV_WRITE 0x2
#define EV_EXCLUSIVE 0x4 /* wake one of the loops sharing this fd (listeners) */
#define EV_ERROR 0x8     /* in revents: error or hang-up on the fd */

struct ev_loop;
struct ev_io;
struct ev_timer;

typedef void (*ev_io_cb)(struct ev_loop *loop, struct ev_io *io, unsigned int revents);
typedef void (*ev_timer_cb)(struct ev_loop *loop, struct ev_timer *t);

/* Embedded in the owner's struct; container_of() gets the owner back. */
struct ev_io {
	int fd;
	unsigned int events; /* EV_READ | EV_WRITE currently registered */
	ev_io_cb cb;
};

struct ev_timer {
	uint64_t deadline_ms; /* ev_now_ms() based */
	size_t heap_idx;      /* position in the loop's heap, SIZE_MAX when stopped */
	ev_timer_cb cb;
};

/* Something to free once the current batch of events is dispatched. */
struct ev_deferred {
	struct ev_deferred *next;
	void (*fn)(struct ev_deferred *d);
};

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

/* Returns a new loop or NULL (errno set). */
struct ev_loop *ev_loop_new(void);
/* Frees the loop; registered fds are not closed (their owners close them). */
void ev_loop_free(struct ev_loop *loop);

/* Runs until ev_loop_stop(); returns 0, or -errno if epoll_wait fails. */
int ev_run(struct ev_loop *loop);
void ev_loop_stop(struct ev_loop *loop);

/* Monotonic milliseconds, cached once per loop iteration. */
uint64_t ev_now_ms(struct ev_loop *loop);
uint64_t ev_clock_ms(void);

/* Registers fd for events (EV_READ|EV_WRITE|EV_EXCLUSIVE). Return 0 or -errno. */
int ev_io_add(struct ev_loop *loop, struct ev_io *io, int fd, unsigned int events, ev_io_cb cb);
/* Changes the interest set; a no-op when it is already that. */
int ev_io_set(struct ev_loop *loop, struct ev_io *io, unsigned int events);
int ev_io_del(struct ev_loop *loop, struct ev_io *io);

void ev_timer_init(struct ev_timer *t, ev_timer_cb cb);
/* (Re)arms the timer to fire once, after_ms from now. Returns 0 or -ENOMEM. */
int ev_timer_start(struct ev_loop *loop, struct ev_timer *t, uint64_t after_ms);
void ev_timer_stop(struct ev_loop *loop, struct ev_timer *t);
bool ev_timer_active(const struct ev_timer *t);

/* Runs the deferred frees now (for a loop that is no longer running). */
void ev_run_deferred(struct ev_loop *loop);

/* d->fn(d) runs after the current batch, so later events in it stay safe. */
void ev_defer(struct ev_loop *loop, struct ev_deferred *d, void (*fn)(struct ev_deferred *));

#endif
