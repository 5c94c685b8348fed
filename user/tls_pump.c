// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <openssl/err.h>

#include "ev.h"
#include "tls_pump.h"

static size_t room(const struct or_pbuf *b)
{
	return OR_TLS_PUMP_BUF - b->off - b->len;
}

int or_tls_pump_read(struct or_tls_pump *p)
{
	int n, e;

	p->read_wants = 0;
	/* SSL may hold decrypted bytes epoll cannot see: read until it says wait. */
	while (!p->tls_eof && room(&p->from_tls)) {
		/*
		 * SSL_get_error() reads this thread's error queue: one left by
		 * another connection of this worker would turn a WANT_READ into a
		 * fatal error here, and close a healthy tunnel.
		 */
		ERR_clear_error();
		n = SSL_read(p->ssl, p->from_tls.buf + p->from_tls.off + p->from_tls.len,
			     room(&p->from_tls));
		if (n > 0) {
			p->from_tls.len += n;
			continue;
		}
		e = SSL_get_error(p->ssl, n);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
			p->read_wants = e;
			return 0;
		}
		if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && !ERR_peek_error())) {
			p->tls_eof = true;
			return 0;
		}
		return -1;
	}
	return 0;
}

int or_tls_pump_queue(struct or_tls_pump *p, const char *buf, size_t len)
{
	if (len > room(&p->to_tls))
		return -ENOSPC;
	memcpy(p->to_tls.buf + p->to_tls.off + p->to_tls.len, buf, len);
	p->to_tls.len += len;
	return 0;
}

void or_tls_pump_consume(struct or_tls_pump *p, size_t n)
{
	if (n > p->from_tls.len)
		n = p->from_tls.len;
	p->from_tls.off += n;
	p->from_tls.len -= n;
	if (!p->from_tls.len)
		p->from_tls.off = 0;
}

int or_tls_pump_run(struct or_tls_pump *p)
{
	ssize_t n;
	int e;

	if (or_tls_pump_read(p))
		return -1;
	if (p->plain != -1 && p->from_tls.len) {
		n = send(p->plain, p->from_tls.buf + p->from_tls.off, p->from_tls.len, MSG_NOSIGNAL);
		if (n > 0)
			or_tls_pump_consume(p, n);
		else if (n == -1 && errno != EAGAIN && errno != EINTR)
			return -1;
	}
	if (p->tls_eof && !p->from_tls.len && !p->plain_shut && p->plain != -1) {
		shutdown(p->plain, SHUT_WR);
		p->plain_shut = true;
	}
	if (p->plain != -1 && !p->plain_eof && room(&p->to_tls)) {
		n = recv(p->plain, p->to_tls.buf + p->to_tls.off + p->to_tls.len, room(&p->to_tls),
			 0);
		if (n > 0)
			p->to_tls.len += n;
		else if (n == 0)
			p->plain_eof = true;
		else if (errno != EAGAIN && errno != EINTR)
			return -1;
	}
	p->write_wants = 0;
	while (p->to_tls.len) {
		int w;

		ERR_clear_error(); /* as before SSL_read */
		w = SSL_write(p->ssl, p->to_tls.buf + p->to_tls.off, p->to_tls.len);

		if (w > 0) {
			p->to_tls.off += w;
			p->to_tls.len -= w;
			continue;
		}
		e = SSL_get_error(p->ssl, w);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
			p->write_wants = e;
			break;
		}
		return -1;
	}
	if (!p->to_tls.len)
		p->to_tls.off = 0;
	if (p->plain_eof && !p->to_tls.len && !p->tls_shut) {
		ERR_clear_error();
		SSL_shutdown(p->ssl); /* close_notify: the peer's read side ends here */
		ERR_clear_error(); /* its outcome is not looked at: leave no trace */
		p->tls_shut = true;
	}
	return 0;
}

bool or_tls_pump_done(const struct or_tls_pump *p)
{
	return p->tls_shut && p->tls_eof && !p->from_tls.len &&
	       (p->plain_shut || p->plain == -1);
}

void or_tls_pump_events(const struct or_tls_pump *p, unsigned int *net, unsigned int *plain)
{
	*net = 0;
	*plain = 0;
	if (p->read_wants == SSL_ERROR_WANT_WRITE || p->write_wants == SSL_ERROR_WANT_WRITE)
		*net |= EV_WRITE;
	if ((!p->tls_eof && room(&p->from_tls)) || p->write_wants == SSL_ERROR_WANT_READ)
		*net |= EV_READ;
	if (p->plain == -1)
		return;
	if (p->from_tls.len)
		*plain |= EV_WRITE;
	if (!p->plain_eof && room(&p->to_tls))
		*plain |= EV_READ;
}
