/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Take-over: a new agent started while one runs asks it, over a Unix
 * socket in state_dir, for its listening sockets (SCM_RIGHTS). Both accept
 * on the same sockets for a moment; once the new agent serves every pod it
 * says READY, and the old one stops accepting, drains and exits. No listener
 * is ever closed, so no connect() meets a refusal, and the pinned links and
 * maps stay attached throughout.
 *
 * The exchange, one SOCK_SEQPACKET message each:
 *   new -> old   HELLO  {pid, node, pin_dir}       (refused unless both match)
 *   old -> new   ITEM   {kind, slot, netns cookie, pod key} + one fd, for each
 *   old -> new   END    {count}          or REFUSE {reason}
 *   new -> old   READY                   (or the socket closes: the old one
 *                                          carries on as before)
 * Every message starts with struct or_ho_hdr; integers are host order (both
 * ends run on one machine). The old agent only answers a peer with its own
 * uid (SO_PEERCRED).
 */
#ifndef OR_HANDOVER_H
#define OR_HANDOVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ev.h"

#define OR_HO_MAGIC 0x4f48524fu /* "ORHO" */
#define OR_HO_VERSION 1
#define OR_HO_MSG_MAX 4096
#define OR_HO_KEY_MAX 320 /* "namespace/name": 63 + 1 + 253, NUL */

enum or_ho_type {
	OR_HO_HELLO = 1,
	OR_HO_ITEM = 2,
	OR_HO_END = 3,
	OR_HO_REFUSE = 4,
	OR_HO_READY = 5,
};

/* What a handed-over socket is. */
enum or_ho_kind {
	OR_HO_POD = 1,   /* a pod's listener; slot as in struct or_enrolled.lsn[] */
	OR_HO_ADMIN = 2, /* admin_address (/metrics) */
	OR_HO_HEALTH = 3, /* ready_address (/healthz/ready) */
};

struct or_ho_hdr {
	uint32_t magic;
	uint16_t version;
	uint16_t type; /* enum or_ho_type */
	uint32_t len;  /* payload bytes after the header */
};

/* A decoded message; strings point into the buffer it was parsed from. */
struct or_ho_msg {
	enum or_ho_type type;
	uint32_t pid;          /* HELLO */
	const char *node;      /* HELLO */
	const char *pin_dir;   /* HELLO */
	uint8_t kind;          /* ITEM: enum or_ho_kind */
	uint8_t slot;          /* ITEM */
	uint64_t netns_cookie; /* ITEM: the socket's netns */
	const char *key;       /* ITEM: pod "namespace/name" ("" for admin) */
	uint32_t count;        /* END */
	const char *reason;    /* REFUSE */
};

/*
 * Decodes one message of len bytes (buf is modified: strings are
 * NUL-terminated in place). Returns 0, or -EBADMSG naming nothing: the
 * caller drops the peer.
 */
int or_ho_parse(uint8_t *buf, size_t len, struct or_ho_msg *out);

/* state_dir/outriderd-<hash of node and pin_dir>.sock into out. 0 or -ENAMETOOLONG. */
int or_ho_path(const char *state_dir, const char *node, const char *pin_dir, char *out,
	       size_t len);

/* ---- the new agent --------------------------------------------------- */

struct or_ho_item {
	uint8_t kind, slot;
	uint64_t netns_cookie;
	char key[OR_HO_KEY_MAX];
	int fd; /* -1 once taken */
};

struct or_ho_client {
	int sock;
	pid_t peer; /* the predecessor */
	struct or_ho_item *items;
	size_t n;
};

/*
 * Asks the agent behind path for its sockets. Returns 0 with hc filled (the
 * predecessor keeps serving until or_ho_client_done), -ENOENT or
 * -ECONNREFUSED when no agent listens there (none runs, or it died), or
 * another -errno (then there is nothing to take over either).
 */
int or_ho_fetch(const char *path, const char *node, const char *pin_dir, int timeout_ms,
		struct or_ho_client *hc);
/* The socket handed over for (kind, key, slot), now the caller's, or -1. */
int or_ho_take(struct or_ho_client *hc, enum or_ho_kind kind, const char *key, unsigned int slot);
/*
 * Tells the predecessor to stop (READY), closes the sockets nobody took and
 * frees hc. Returns how many were left unused.
 */
size_t or_ho_client_done(struct or_ho_client *hc);
/* Gives up without READY (our start failed): the predecessor serves on. */
void or_ho_client_abort(struct or_ho_client *hc);

/* ---- the running agent ----------------------------------------------- */

struct or_ho_server;

struct or_ho_hooks {
	/*
	 * Fills items with the sockets to hand over, at most max of them, and
	 * returns how many there are in all (max 0: just count). The sockets
	 * stay the caller's.
	 */
	size_t (*collect)(void *ctx, struct or_ho_item *items, size_t max);
	/* The successor serves everything: stop accepting, drain, exit. */
	void (*replaced)(void *ctx, pid_t successor);
	/* Optional: the successor went away after it got the sockets; carry on. */
	void (*abandoned)(void *ctx);
	void *ctx;
};

/*
 * Listens at path (replacing a stale socket file) on loop. 0 or -errno.
 * node and pin_dir are what a successor must name to be answered.
 */
int or_ho_listen(struct ev_loop *loop, const char *path, const char *node, const char *pin_dir,
		 const struct or_ho_hooks *hooks, struct or_ho_server **out);
/*
 * Whether a successor holds our sockets and has not said READY yet: the
 * agent then changes nothing it shares with it (pods, pins, maps).
 */
bool or_ho_handing(const struct or_ho_server *s);
/*
 * Stops listening; removes the socket file when it is still ours. The
 * memory goes through ev_defer (callers may be inside s's events).
 */
void or_ho_close(struct or_ho_server *s);

#endif
