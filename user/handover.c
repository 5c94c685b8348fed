// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "handover.h"
#include "log.h"

/* ---- messages ---------------------------------------------------------- */

/* ITEM payload before the key. */
struct ho_item_fixed {
	uint8_t kind;
	uint8_t slot;
	uint8_t pad[6];
	uint64_t netns_cookie;
};

/* One NUL-terminated string at *off within [0, len); advances *off past it. */
static const char *take_str(uint8_t *p, size_t len, size_t *off, size_t max)
{
	const uint8_t *nul;
	size_t room = len - *off;
	const char *s;

	if (*off >= len)
		return NULL;
	nul = memchr(p + *off, 0, room < max ? room : max);
	if (!nul)
		return NULL;
	s = (const char *)p + *off;
	*off = (size_t)(nul - p) + 1;
	return s;
}

int or_ho_parse(uint8_t *buf, size_t len, struct or_ho_msg *out)
{
	struct or_ho_hdr h;
	struct ho_item_fixed it;
	uint8_t *p;
	size_t off = 0;

	memset(out, 0, sizeof(*out));
	if (len < sizeof(h) || len > OR_HO_MSG_MAX)
		return -EBADMSG;
	memcpy(&h, buf, sizeof(h));
	if (h.magic != OR_HO_MAGIC || h.version != OR_HO_VERSION || h.len != len - sizeof(h))
		return -EBADMSG;
	p = buf + sizeof(h);
	len -= sizeof(h);
	out->type = h.type;
	switch (h.type) {
	case OR_HO_HELLO:
		if (len < 4)
			return -EBADMSG;
		memcpy(&out->pid, p, 4);
		off = 4;
		out->node = take_str(p, len, &off, OR_HO_KEY_MAX);
		out->pin_dir = take_str(p, len, &off, 4096);
		if (!out->node || !out->pin_dir || off != len)
			return -EBADMSG;
		return 0;
	case OR_HO_ITEM:
		if (len < sizeof(it))
			return -EBADMSG;
		memcpy(&it, p, sizeof(it));
		off = sizeof(it);
		out->kind = it.kind;
		out->slot = it.slot;
		out->netns_cookie = it.netns_cookie;
		out->key = take_str(p, len, &off, OR_HO_KEY_MAX);
		if (!out->key || off != len || it.kind < OR_HO_POD || it.kind > OR_HO_HEALTH)
			return -EBADMSG;
		return 0;
	case OR_HO_END:
		if (len != 4)
			return -EBADMSG;
		memcpy(&out->count, p, 4);
		return 0;
	case OR_HO_REFUSE:
		out->reason = take_str(p, len, &off, 512);
		return out->reason && off == len ? 0 : -EBADMSG;
	case OR_HO_READY:
		return len == 0 ? 0 : -EBADMSG;
	}
	return -EBADMSG;
}

/* Sends header + payload, with fd (or -1) attached. 0 or -errno. */
static int send_msg(int sock, enum or_ho_type type, const void *payload, size_t len, int fd)
{
	struct or_ho_hdr h = { OR_HO_MAGIC, OR_HO_VERSION, type, (uint32_t)len };
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov[2] = { { &h, sizeof(h) }, { (void *)payload, len } };
	struct msghdr m = { .msg_iov = iov, .msg_iovlen = len ? 2 : 1 };

	if (sizeof(h) + len > OR_HO_MSG_MAX)
		return -EMSGSIZE;
	if (fd >= 0) {
		struct cmsghdr *c;

		memset(&ctl, 0, sizeof(ctl));
		m.msg_control = ctl.buf;
		m.msg_controllen = sizeof(ctl.buf);
		c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	if (sendmsg(sock, &m, MSG_NOSIGNAL) == -1)
		return -errno;
	return 0;
}

/*
 * Receives one message into buf (OR_HO_MSG_MAX) and decodes it; *fd gets
 * an attached descriptor or -1 (extra ones are closed). 0, -EBADMSG, -EPIPE
 * at end of stream, or -errno.
 */
static int recv_msg(int sock, uint8_t *buf, struct or_ho_msg *msg, int *fd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * 4)];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { buf, OR_HO_MSG_MAX };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
			    .msg_controllen = sizeof(ctl.buf) };
	ssize_t n;

	*fd = -1;
	n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC);
	if (n == -1)
		return -errno;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
		size_t nfd;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < nfd; i++) {
			int f;

			memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (*fd == -1)
				*fd = f;
			else
				close(f);
		}
	}
	if (n == 0)
		return -EPIPE;
	if (m.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
		return -EBADMSG;
	return or_ho_parse(buf, (size_t)n, msg);
}

int or_ho_path(const char *state_dir, const char *node, const char *pin_dir, char *out,
	       size_t len)
{
	uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a of node, NUL, pin_dir */
	struct sockaddr_un sa;

	for (const char *p = node; *p; p++)
		h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
	h *= 0x100000001b3ull;
	for (const char *p = pin_dir; *p; p++)
		h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
	if ((size_t)snprintf(out, len, "%s/outriderd-%016llx.sock", state_dir,
			     (unsigned long long)h) >= len ||
	    strlen(out) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	return 0;
}

static int unix_addr(const char *path, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa->sun_path))
		return -ENAMETOOLONG;
	strcpy(sa->sun_path, path);
	return 0;
}

static void set_timeouts(int sock, int timeout_ms)
{
	struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };

	setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* ---- the new agent ----------------------------------------------------- */

static void client_free(struct or_ho_client *hc)
{
	for (size_t i = 0; i < hc->n; i++)
		if (hc->items[i].fd != -1)
			close(hc->items[i].fd);
	free(hc->items);
	if (hc->sock != -1)
		close(hc->sock);
	memset(hc, 0, sizeof(*hc));
	hc->sock = -1;
}

int or_ho_fetch(const char *path, const char *node, const char *pin_dir, int timeout_ms,
		struct or_ho_client *hc)
{
	uint8_t *buf = NULL, *hello = NULL;
	size_t hello_len, cap = 0;
	struct sockaddr_un sa;
	struct ucred cred;
	socklen_t cl = sizeof(cred);
	struct or_ho_msg m;
	uint32_t pid = (uint32_t)getpid();
	int err, fd;

	memset(hc, 0, sizeof(*hc));
	hc->sock = -1;
	err = unix_addr(path, &sa);
	if (err)
		return err;
	hc->sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (hc->sock == -1)
		return -errno;
	set_timeouts(hc->sock, timeout_ms);
	if (connect(hc->sock, (struct sockaddr *)&sa, sizeof(sa)) == -1) {
		err = -errno;
		goto fail;
	}
	/* Only an agent of our own uid is trusted with our pods' sockets. */
	if (getsockopt(hc->sock, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == -1 ||
	    cred.uid != geteuid()) {
		err = -EPERM;
		goto fail;
	}
	hc->peer = cred.pid;

	hello_len = 4 + strlen(node) + 1 + strlen(pin_dir) + 1;
	hello = malloc(hello_len);
	buf = malloc(OR_HO_MSG_MAX);
	if (!hello || !buf) {
		err = -ENOMEM;
		goto fail;
	}
	memcpy(hello, &pid, 4);
	memcpy(hello + 4, node, strlen(node) + 1);
	memcpy(hello + 4 + strlen(node) + 1, pin_dir, strlen(pin_dir) + 1);
	err = send_msg(hc->sock, OR_HO_HELLO, hello, hello_len, -1);
	if (err)
		goto fail;
	for (;;) {
		err = recv_msg(hc->sock, buf, &m, &fd);
		if (err) {
			if (fd != -1)
				close(fd);
			goto fail;
		}
		if (m.type == OR_HO_END) {
			if (m.count != hc->n) {
				err = -EBADMSG;
				goto fail;
			}
			break;
		}
		if (m.type == OR_HO_REFUSE) {
			or_warn("take-over: the running agent refused", "peer_pid=%d reason=\"%s\"",
				(int)hc->peer, m.reason);
			err = -EPERM;
			goto fail;
		}
		if (m.type != OR_HO_ITEM || fd == -1) {
			if (fd != -1)
				close(fd);
			err = -EBADMSG;
			goto fail;
		}
		if (hc->n == cap) {
			struct or_ho_item *ni;

			cap = cap ? cap * 2 : 32;
			ni = realloc(hc->items, cap * sizeof(*ni));
			if (!ni) {
				close(fd);
				err = -ENOMEM;
				goto fail;
			}
			hc->items = ni;
		}
		hc->items[hc->n] = (struct or_ho_item){ .kind = m.kind, .slot = m.slot,
							.netns_cookie = m.netns_cookie, .fd = fd };
		snprintf(hc->items[hc->n].key, sizeof(hc->items[hc->n].key), "%s", m.key);
		hc->n++;
	}
	free(buf);
	free(hello);
	return 0;
fail:
	free(buf);
	free(hello);
	client_free(hc);
	return err;
}

int or_ho_take(struct or_ho_client *hc, enum or_ho_kind kind, const char *key, unsigned int slot)
{
	for (size_t i = 0; hc && i < hc->n; i++) {
		struct or_ho_item *it = &hc->items[i];
		int fd = it->fd;

		if (fd == -1 || it->kind != kind || it->slot != slot ||
		    strcmp(it->key, key ? key : "") != 0)
			continue;
		it->fd = -1;
		return fd;
	}
	return -1;
}

void or_ho_client_abort(struct or_ho_client *hc)
{
	/* No READY: the predecessor sees the socket close and serves on. */
	if (hc->sock != -1)
		client_free(hc);
}

size_t or_ho_client_done(struct or_ho_client *hc)
{
	size_t left = 0;
	int err;

	if (hc->sock == -1)
		return 0;
	for (size_t i = 0; i < hc->n; i++)
		left += hc->items[i].fd != -1;
	err = send_msg(hc->sock, OR_HO_READY, NULL, 0, -1);
	if (err)
		or_warn("take-over: cannot tell the old agent to stop", "peer_pid=%d err=\"%s\"",
			(int)hc->peer, strerror(-err));
	client_free(hc);
	return left;
}

/* ---- the running agent ------------------------------------------------- */

struct or_ho_server {
	struct ev_loop *loop;
	struct or_ho_hooks hooks;
	char *path, *node, *pin_dir;
	ino_t ino; /* of the socket file we bound, to remove only our own */
	struct ev_io lsn;
	struct ev_io sess; /* one successor at a time */
	bool in_session;
	bool handed; /* sent everything: waiting for READY */
	bool closed;
	struct ev_deferred defer;
};

static void session_end(struct or_ho_server *s)
{
	bool was_handed = s->handed;

	if (!s->in_session)
		return;
	ev_io_del(s->loop, &s->sess);
	close(s->sess.fd);
	s->in_session = false;
	s->handed = false;
	if (was_handed && !s->closed && s->hooks.abandoned)
		s->hooks.abandoned(s->hooks.ctx);
}

bool or_ho_handing(const struct or_ho_server *s)
{
	return s && s->handed;
}

static void refuse(int sock, const char *why)
{
	send_msg(sock, OR_HO_REFUSE, why, strlen(why) + 1, -1);
}

/* Sends every socket, then END. 0 or -errno. */
static int hand_over(struct or_ho_server *s, int sock)
{
	struct or_ho_item *items;
	size_t n, max = s->hooks.collect(s->hooks.ctx, NULL, 0);
	int err = 0;

	items = calloc(max ? max : 1, sizeof(*items));
	if (!items)
		return -ENOMEM;
	n = s->hooks.collect(s->hooks.ctx, items, max);
	if (n > max)
		n = max; /* nothing changes between the two calls (one thread): never */
	for (size_t i = 0; i < n && !err; i++) {
		uint8_t p[sizeof(struct ho_item_fixed) + OR_HO_KEY_MAX];
		struct ho_item_fixed f = { .kind = items[i].kind, .slot = items[i].slot,
					   .netns_cookie = items[i].netns_cookie };
		size_t kl = strnlen(items[i].key, OR_HO_KEY_MAX - 1);

		memcpy(p, &f, sizeof(f));
		memcpy(p + sizeof(f), items[i].key, kl);
		p[sizeof(f) + kl] = 0;
		err = send_msg(sock, OR_HO_ITEM, p, sizeof(f) + kl + 1, items[i].fd);
	}
	if (!err) {
		uint32_t count = (uint32_t)n;

		err = send_msg(sock, OR_HO_END, &count, sizeof(count), -1);
	}
	free(items);
	return err;
}

static void on_session(struct ev_loop *loop, struct ev_io *io, unsigned int revents)
{
	struct or_ho_server *s = container_of(io, struct or_ho_server, sess);
	struct ucred cred;

	if (s->closed)
		return;
	socklen_t cl = sizeof(cred);
	struct or_ho_msg m;
	uint8_t buf[OR_HO_MSG_MAX];
	int fd, err;

	err = recv_msg(io->fd, buf, &m, &fd);
	if (fd != -1)
		close(fd); /* a successor sends no sockets */
	if (err == -EAGAIN || err == -EINTR)
		return;
	if (getsockopt(io->fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == -1)
		cred.pid = 0;
	if (err) {
		if (s->handed)
			or_warn("take-over abandoned: the new agent went away; serving on",
				"peer_pid=%d", (int)cred.pid);
		else if (err != -EPIPE)
			or_warn("take-over: bad message", "peer_pid=%d err=\"%s\"", (int)cred.pid,
				strerror(-err));
		session_end(s);
		return;
	}
	if (!s->handed && m.type == OR_HO_HELLO) {
		if (strcmp(m.node, s->node) != 0 || strcmp(m.pin_dir, s->pin_dir) != 0) {
			or_warn("take-over refused: another node or pin_dir", "peer_pid=%d node=%s "
				"pin_dir=%s", (int)cred.pid, m.node, m.pin_dir);
			refuse(io->fd, "node or pin_dir differs");
			session_end(s);
			return;
		}
		or_info("take-over: handing the listeners to a new agent", "peer_pid=%d",
			(int)cred.pid);
		/* Blocking for the burst of messages; the successor is reading them. */
		fcntl(io->fd, F_SETFL, fcntl(io->fd, F_GETFL) & ~O_NONBLOCK);
		set_timeouts(io->fd, 2000);
		err = hand_over(s, io->fd);
		fcntl(io->fd, F_SETFL, fcntl(io->fd, F_GETFL) | O_NONBLOCK);
		if (err) {
			or_warn("take-over: cannot hand the listeners over",
				"peer_pid=%d err=\"%s\"",
				(int)cred.pid, strerror(-err));
			session_end(s);
			return;
		}
		s->handed = true;
		return;
	}
	if (s->handed && m.type == OR_HO_READY) {
		s->handed = false; /* done, not abandoned */
		session_end(s);
		s->hooks.replaced(s->hooks.ctx, cred.pid);
		return;
	}
	or_warn("take-over: unexpected message", "peer_pid=%d type=%u", (int)cred.pid,
		(unsigned int)m.type);
	session_end(s);
}

static void on_connect(struct ev_loop *loop, struct ev_io *io, unsigned int revents)
{
	struct or_ho_server *s = container_of(io, struct or_ho_server, lsn);
	struct ucred cred;
	socklen_t cl = sizeof(cred);
	int fd;

	if (s->closed)
		return;
	fd = accept4(io->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd == -1)
		return;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == -1 || cred.uid != geteuid()) {
		or_warn("take-over refused: peer of another uid", "peer_uid=%d",
			cl == sizeof(cred) ? (int)cred.uid : -1);
		refuse(fd, "another uid");
		close(fd);
		return;
	}
	if (s->in_session) {
		refuse(fd, "another take-over is in progress");
		close(fd);
		return;
	}
	if (ev_io_add(loop, &s->sess, fd, EV_READ, on_session)) {
		close(fd);
		return;
	}
	s->in_session = true;
}

int or_ho_listen(struct ev_loop *loop, const char *path, const char *node, const char *pin_dir,
		 const struct or_ho_hooks *hooks, struct or_ho_server **out)
{
	struct or_ho_server *s;
	struct sockaddr_un sa;
	struct stat st;
	int fd, err;

	err = unix_addr(path, &sa);
	if (err)
		return err;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->loop = loop;
	s->hooks = *hooks;
	s->path = strdup(path);
	s->node = strdup(node);
	s->pin_dir = strdup(pin_dir);
	if (!s->path || !s->node || !s->pin_dir) {
		err = -ENOMEM;
		goto fail;
	}
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		err = -errno;
		goto fail;
	}
	/* Whatever is there belongs to an agent that is gone (or we took over from it). */
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1 || chmod(path, 0600) == -1 ||
	    listen(fd, 4) == -1 || stat(path, &st) == -1) {
		err = -errno;
		close(fd);
		goto fail;
	}
	s->ino = st.st_ino;
	err = ev_io_add(loop, &s->lsn, fd, EV_READ, on_connect);
	if (err) {
		close(fd);
		unlink(path);
		goto fail;
	}
	*out = s;
	return 0;
fail:
	free(s->path);
	free(s->node);
	free(s->pin_dir);
	free(s);
	return err;
}

static void server_free(struct ev_deferred *d)
{
	struct or_ho_server *s = container_of(d, struct or_ho_server, defer);

	free(s->path);
	free(s->node);
	free(s->pin_dir);
	free(s);
}

void or_ho_close(struct or_ho_server *s)
{
	struct stat st;

	if (!s || s->closed)
		return;
	s->closed = true;
	session_end(s);
	ev_io_del(s->loop, &s->lsn);
	close(s->lsn.fd);
	/* A successor may have bound the path already: leave its socket alone. */
	if (stat(s->path, &st) == 0 && st.st_ino == s->ino)
		unlink(s->path);
	/* Events for s may still be queued in this batch. */
	ev_defer(s->loop, &s->defer, server_free);
}
