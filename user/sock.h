/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Socket helpers. Each returns an fd or 0, or -errno; callers log strerror. */
#ifndef OR_SOCK_H
#define OR_SOCK_H

#include <stdint.h>

#include "addr.h"

/* Non-blocking listener on ip:port in the calling thread's netns. */
int or_sock_listen(const struct or_ip *ip, uint16_t port, int backlog);
/*
 * Starts a non-blocking connect to ip:port. Returns the fd; *in_progress
 * tells whether to wait for writability. Immediate failures return -errno.
 */
int or_sock_connect(const struct or_ip *ip, uint16_t port, int *in_progress);
/* The pending error of a connecting socket (SO_ERROR), as -errno or 0. */
int or_sock_error(int fd);
/* SO_NETNS_COOKIE of the netns the socket lives in. */
int or_sock_netns_cookie(int fd, uint64_t *cookie);
/*
 * 0 when fd is a listening TCP socket bound to exactly ip:port (a socket
 * handed over by another agent is checked before it is used), else -errno.
 */
int or_sock_is_listener(int fd, const struct or_ip *ip, uint16_t port);
/* SO_NETNS_COOKIE of the calling thread's netns. */
int or_sock_netns_cookie_here(uint64_t *cookie);
/* Peer port, host byte order, or -errno. */
int or_sock_peer_port(int fd);
/* Close so that the peer sees a reset rather than a clean FIN. */
void or_sock_close_rst(int fd);

#endif
