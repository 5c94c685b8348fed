// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <errno.h>
#include <stdio.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <openssl/err.h>

#include "log.h"
#include "tls.h"

#ifndef TCP_ULP
#define TCP_ULP 31
#endif

struct or_tls_stats or_tls_stats;

/* ex_data slots on SSL: the verified peer SPIFFE ID, and a client's destination. */
static int peer_id_idx = -1;
static int dest_idx = -1;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void free_peer_id(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
			 void *argp)
{
	free(ptr);
}

static void init_once(void)
{
	peer_id_idx = SSL_get_ex_new_index(0, "outrider peer id", NULL, NULL, free_peer_id);
	dest_idx = SSL_get_ex_new_index(0, "outrider destination", NULL, NULL, free_peer_id);
}

const char *or_tls_error(char *buf, size_t len)
{
	unsigned long e = ERR_get_error();

	if (!e)
		snprintf(buf, len, "no OpenSSL error");
	else
		ERR_error_string_n(e, buf, len);
	ERR_clear_error();
	return buf;
}

bool or_tls_ktls_available(void)
{
	static int cached = -1;
	int fd, lfd = -1, cfd = -1, afd = -1;
	struct sockaddr_in sin = { .sin_family = AF_INET,
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t slen = sizeof(sin);

	if (cached >= 0)
		return cached;
	cached = 0;
	/* TCP_ULP needs an established socket: make one on loopback. */
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd == -1 || bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    listen(lfd, 1) == -1 || getsockname(lfd, (struct sockaddr *)&sin, &slen) == -1)
		goto out;
	cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (cfd == -1 || connect(cfd, (struct sockaddr *)&sin, sizeof(sin)) == -1)
		goto out;
	afd = accept(lfd, NULL, NULL);
	fd = cfd;
	if (setsockopt(fd, IPPROTO_TCP, TCP_ULP, "tls", sizeof("tls")) == 0)
		cached = 1;
out:
	or_info(cached ? "kernel TLS available" : "kernel TLS not available; TLS stays in userspace",
		"probe=\"setsockopt TCP_ULP tls\" err=\"%s\"", cached ? "none" : strerror(errno));
	if (afd != -1)
		close(afd);
	if (cfd != -1)
		close(cfd);
	if (lfd != -1)
		close(lfd);
	return cached;
}

/*
 * Replaces OpenSSL's chain verification with ours: the chain to the bundle
 * and the SVID rules, so a refused peer fails the handshake itself.
 */
static int verify_svid(X509_STORE_CTX *xctx, void *arg)
{
	struct or_tls_id *id = arg;
	SSL *ssl = X509_STORE_CTX_get_ex_data(xctx, SSL_get_ex_data_X509_STORE_CTX_idx());
	X509 *leaf = X509_STORE_CTX_get0_cert(xctx);
	STACK_OF(X509) *chain = X509_STORE_CTX_get0_untrusted(xctx);
	char peer[OR_SPIFFE_ID_MAX];
	enum or_svid_err err;

	err = or_svid_verify(id->ca->bundle, leaf, chain, id->ca->trust_domain, time(NULL), peer,
			     sizeof(peer));
	if (err != OR_SVID_OK) {
		atomic_fetch_add(&or_tls_stats.failures[err], 1);
		or_debug("peer SVID refused", "reason=%s", or_svid_err_name(err));
		X509_STORE_CTX_set_error(xctx, X509_V_ERR_APPLICATION_VERIFICATION);
		return 0;
	}
	if (ssl)
		SSL_set_ex_data(ssl, peer_id_idx, strdup(peer));
	return 1;
}

void or_tls_count_failure(SSL *ssl)
{
	unsigned long e = ERR_peek_error();

	if (SSL_get_verify_result(ssl) == X509_V_ERR_APPLICATION_VERIFICATION)
		return; /* verify_svid counted it, by reason */
	/* Only a client that was asked for a certificate and sent none is no_cert. */
	if (SSL_is_server(ssl) && ERR_GET_LIB(e) == ERR_LIB_SSL &&
	    ERR_GET_REASON(e) == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE)
		atomic_fetch_add(&or_tls_stats.failures[OR_SVID_NO_CERT], 1);
	else
		atomic_fetch_add(&or_tls_stats.failures_tls, 1);
}

const char *or_tls_peer_id(SSL *ssl)
{
	struct or_tls_id *id = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
	const char *known = SSL_get_ex_data(ssl, peer_id_idx);
	char peer[OR_SPIFFE_ID_MAX];
	X509 *cert;

	if (known || !id || !SSL_session_reused(ssl))
		return known;
	/*
	 * A resumed session skips the certificate exchange, so our check never
	 * ran on this connection: run it on the certificate the session keeps,
	 * which refuses one that expired since. Its chain was verified when the
	 * ticket was issued, by this process (the ticket keys live and die with
	 * the SSL_CTX) against this CA, which cannot change without a restart:
	 * the signatures need no second look.
	 */
	cert = SSL_get0_peer_certificate(ssl);
	if (!cert || or_svid_recheck(cert, id->ca->trust_domain, time(NULL), peer, sizeof(peer)) !=
			     OR_SVID_OK)
		return NULL;
	SSL_set_ex_data(ssl, peer_id_idx, strdup(peer));
	return SSL_get_ex_data(ssl, peer_id_idx);
}

/* With no client certificate at all, the verify callback is never called. */
static int no_cert_check(X509_STORE_CTX *xctx, void *arg)
{
	return verify_svid(xctx, arg);
}

/* Sessions a pod's server context remembers for resumption (about 2 KiB each). */
#define OR_TLS_SERVER_SESSIONS 1024
#define OR_TLS_SESSION_TIMEOUT_S 3600

static SSL_CTX *make_ctx(struct or_tls_id *id, bool server)
{
	SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
	char e[256];

	if (!ctx)
		goto fail;
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:"
					   "TLS_CHACHA20_POLY1305_SHA256") ||
	    !SSL_CTX_use_certificate(ctx, id->svid->cert) ||
	    !SSL_CTX_use_PrivateKey(ctx, id->svid->key) || !SSL_CTX_check_private_key(ctx) ||
	    !SSL_CTX_set1_groups_list(ctx, "P-256:X25519"))
		goto fail;
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	SSL_CTX_set_cert_verify_callback(ctx, no_cert_check, id);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
				      SSL_MODE_RELEASE_BUFFERS);
	/*
	 * TLS 1.3 resumption, one ticket per handshake (the client keeps the
	 * newest per destination). Stateful on the server: a ticket names a
	 * session in this context's cache, so resuming is a lookup, not a
	 * decode of the whole session from the ticket (half the server's CPU
	 * per new tunnel). The cache is bounded (LRU) and entries time out.
	 */
	SSL_CTX_set_num_tickets(ctx, 1);
	if (server) {
		SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
		SSL_CTX_sess_set_cache_size(ctx, OR_TLS_SERVER_SESSIONS);
		SSL_CTX_set_timeout(ctx, OR_TLS_SESSION_TIMEOUT_S);
	}
	SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"outrider", 8);
	return ctx;
fail:
	or_error("cannot build TLS context", "id=%s err=\"%s\"", id->svid->id,
		 or_tls_error(e, sizeof(e)));
	SSL_CTX_free(ctx);
	return NULL;
}

/* TLS 1.3 tickets arrive after the handshake: keep the newest per destination. */
static int on_new_session(SSL *ssl, SSL_SESSION *sess)
{
	struct or_tls_id *id = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
	const char *dest = SSL_get_ex_data(ssl, dest_idx);
	unsigned int slot;

	if (!id || !dest)
		return 0;
	pthread_mutex_lock(&id->sess_lock);
	for (slot = 0; slot < OR_TLS_SESSIONS; slot++)
		if (id->sess[slot].s && strcmp(id->sess[slot].dest, dest) == 0)
			break;
	if (slot == OR_TLS_SESSIONS)
		slot = id->sess_next++ % OR_TLS_SESSIONS;
	SSL_SESSION_free(id->sess[slot].s);
	id->sess[slot].s = sess;
	snprintf(id->sess[slot].dest, sizeof(id->sess[slot].dest), "%s", dest);
	pthread_mutex_unlock(&id->sess_lock);
	return 1; /* we keep the reference */
}

SSL *or_tls_client_new(struct or_tls_id *id, const char *dest)
{
	SSL *ssl = SSL_new(id->client);

	if (!ssl)
		return NULL;
	SSL_set_connect_state(ssl);
	SSL_set_ex_data(ssl, dest_idx, strdup(dest));
	pthread_mutex_lock(&id->sess_lock);
	for (unsigned int i = 0; i < OR_TLS_SESSIONS; i++) {
		if (id->sess[i].s && strcmp(id->sess[i].dest, dest) == 0) {
			SSL_set_session(ssl, id->sess[i].s);
			break;
		}
	}
	pthread_mutex_unlock(&id->sess_lock);
	return ssl;
}

struct or_tls_id *or_tls_id_new(const struct or_ca *ca, struct or_svid *svid)
{
	struct or_tls_id *id = calloc(1, sizeof(*id));

	pthread_once(&once, init_once);
	if (!id) {
		or_svid_free(svid);
		return NULL;
	}
	atomic_init(&id->ref, 1);
	pthread_mutex_init(&id->sess_lock, NULL);
	id->svid = svid;
	id->ca = ca;
	id->server = make_ctx(id, true);
	id->client = make_ctx(id, false);
	if (id->server)
		SSL_CTX_set_app_data(id->server, id);
	if (id->client) {
		SSL_CTX_set_app_data(id->client, id);
		SSL_CTX_set_session_cache_mode(id->client, SSL_SESS_CACHE_CLIENT |
							     SSL_SESS_CACHE_NO_INTERNAL_STORE);
		SSL_CTX_sess_set_new_cb(id->client, on_new_session);
	}
	if (!id->server || !id->client) {
		or_tls_id_put(id);
		return NULL;
	}
	return id;
}

void or_tls_id_get(struct or_tls_id *id)
{
	atomic_fetch_add(&id->ref, 1);
}

void or_tls_id_put(struct or_tls_id *id)
{
	if (!id || atomic_fetch_sub(&id->ref, 1) != 1)
		return;
	SSL_CTX_free(id->server);
	SSL_CTX_free(id->client);
	for (unsigned int i = 0; i < OR_TLS_SESSIONS; i++)
		SSL_SESSION_free(id->sess[i].s);
	pthread_mutex_destroy(&id->sess_lock);
	or_svid_free(id->svid);
	free(id);
}
