// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <errno.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sock.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

int or_sock_listen(const struct or_ip *ip, uint16_t port, int backlog)
{
	struct sockaddr_storage ss;
	socklen_t len = or_ip_sockaddr(ip, port, &ss);
	int one = 1;
	int fd, err;

	fd = socket(ip->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1)
		goto fail;
	/*
	 * Accepted sockets inherit it: without, a TLS handshake's or a
	 * CONNECT's small writes wait on Nagle and the peer's delayed ACK (40 ms).
	 */
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == -1)
		goto fail;
	if (ip->family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) == -1)
		goto fail;
	if (bind(fd, (struct sockaddr *)&ss, len) == -1)
		goto fail;
	if (listen(fd, backlog) == -1)
		goto fail;
	return fd;
fail:
	err = -errno;
	close(fd);
	return err;
}

int or_sock_connect(const struct or_ip *ip, uint16_t port, int *in_progress)
{
	struct sockaddr_storage ss;
	socklen_t len = or_ip_sockaddr(ip, port, &ss);
	int one = 1;
	int fd, err;

	*in_progress = 0;
	fd = socket(ip->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -errno;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&ss, len) == 0)
		return fd;
	if (errno == EINPROGRESS) {
		*in_progress = 1;
		return fd;
	}
	err = -errno;
	close(fd);
	return err;
}

int or_sock_error(int fd)
{
	socklen_t len = sizeof(int);
	int soerr = 0;

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == -1)
		return -errno;
	return -soerr;
}

int or_sock_netns_cookie(int fd, uint64_t *cookie)
{
	socklen_t len = sizeof(*cookie);

	if (getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, cookie, &len) == -1)
		return -errno;
	return 0;
}

int or_sock_peer_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getpeername(fd, (struct sockaddr *)&ss, &len) == -1)
		return -errno;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

void or_sock_close_rst(int fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

int or_sock_is_listener(int fd, const struct or_ip *ip, uint16_t port)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	struct or_ip have;
	uint16_t have_port;
	int on = 0, type = 0;
	socklen_t ol = sizeof(on), tl = sizeof(type);

	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &ol) == -1 ||
	    getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) == -1 ||
	    getsockname(fd, (struct sockaddr *)&ss, &len) == -1)
		return -errno;
	if (!on || type != SOCK_STREAM || or_ip_from_sockaddr(&ss, &have, &have_port) ||
	    !or_ip_eq(&have, ip) || have_port != port)
		return -EINVAL;
	return 0;
}

int or_sock_netns_cookie_here(uint64_t *cookie)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), err;

	if (fd == -1)
		return -errno;
	err = or_sock_netns_cookie(fd, cookie);
	close(fd);
	return err;
}
