/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Workload identities: the cluster CA and one X.509 SVID per enrolled pod
 * (ECDSA P-256), SPIFFE IDs spiffe://<trust domain>/ns/<ns>/sa/<sa>, and
 * the checks a peer's SVID must pass. OpenSSL 3. No file is read per
 * connection: the CA is loaded (or created) once, SVIDs live in memory.
 */
#ifndef OR_IDENTITY_H
#define OR_IDENTITY_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <sys/stat.h>
#include <openssl/x509.h>

#define OR_SPIFFE_ID_MAX 512 /* 63-char namespace + 253-char service account fit */

struct or_ca {
	EVP_PKEY *key;        /* signs SVIDs */
	X509 *cert;           /* self-signed root, CA:TRUE, keyCertSign */
	X509_STORE *bundle;   /* trust bundle: the root */
	char *trust_domain;   /* e.g. "cluster.local" */
	char *cert_path, *key_path; /* the files it was loaded from */
	struct stat seen[2];        /* of those, when last found to hold this CA */
};

/*
 * Loads the CA from cert_path/key_path (PEM). When both are NULL, uses
 * <state_dir>/ca.crt and <state_dir>/ca.key, creating them (key 0600,
 * directory 0700) if absent: the embedded default, for demos; two agents
 * sharing a state_dir share the CA. Returns 0 or -errno / -EINVAL with a
 * reason in err ("path: what is wrong").
 */
int or_ca_load(const char *cert_path, const char *key_path, const char *state_dir,
	       const char *trust_domain, struct or_ca **out, char *err, size_t errlen);
void or_ca_free(struct or_ca *ca);
/*
 * Whether the CA's files still hold this CA: the agent signs only while its
 * CA source is there (a Secret removed or rotated away makes it stop, as a
 * mesh's node proxy stops getting certificates when its CA server is gone).
 * 0, or -errno / -EINVAL / -ESTALE with the reason in err.
 */
int or_ca_check(struct or_ca *ca, char *err, size_t errlen);

struct or_svid {
	EVP_PKEY *key;
	X509 *cert;       /* leaf: CA:FALSE, digitalSignature, serverAuth+clientAuth, one URI SAN */
	char id[OR_SPIFFE_ID_MAX];
	time_t not_before; /* backdated a little for clock skew */
	time_t not_after;
};

/* Mints an SVID for ns/sa valid ttl_s from now. Returns 0 or -errno. */
int or_svid_mint(const struct or_ca *ca, const char *ns, const char *sa, uint32_t ttl_s,
		 time_t now, struct or_svid **out);
void or_svid_free(struct or_svid *s);
/* When to renew: half way through the validity. */
time_t or_svid_renew_at(const struct or_svid *s);

/* The SPIFFE ID for a workload, into buf. Returns 0 or -ENAMETOOLONG. */
int or_spiffe_id(const char *trust_domain, const char *ns, const char *sa, char *buf, size_t len);

enum or_svid_err {
	OR_SVID_OK = 0,
	OR_SVID_NO_CERT,         /* the peer sent none */
	OR_SVID_CHAIN,           /* does not chain to the trust bundle */
	OR_SVID_URI_COUNT,       /* not exactly one URI SAN */
	OR_SVID_NOT_SPIFFE,      /* the URI is not spiffe://td/path, or malformed */
	OR_SVID_TRUST_DOMAIN,    /* another trust domain (compared exactly; must be lowercase) */
	OR_SVID_IS_CA,           /* leaf with basicConstraints CA:TRUE */
	OR_SVID_EXPIRED,
	OR_SVID_NOT_YET_VALID,
	OR_SVID_KEY_USAGE,       /* no digitalSignature, or keyCertSign/cRLSign on a leaf */
	OR_SVID_ERR_MAX,
};

/*
 * Checks a peer's leaf (with its intermediates, may be NULL) against the
 * bundle and the rules above, at time `now`. On OR_SVID_OK the SPIFFE ID
 * is copied to id (if not NULL).
 */
enum or_svid_err or_svid_verify(X509_STORE *bundle, X509 *leaf, STACK_OF(X509) *chain,
				const char *trust_domain, time_t now, char *id, size_t id_len);
/*
 * The same for a leaf whose chain was verified before, in this process,
 * against a bundle that has not changed since (the peer certificate a
 * resumed TLS session carries: only this process can read its tickets).
 * Validity at `now` and the SVID rules, without the signature work.
 */
enum or_svid_err or_svid_recheck(X509 *leaf, const char *trust_domain, time_t now, char *id,
				 size_t id_len);
/* Short names (also the metrics' and outriderctl's), "unknown" past the end. */
static inline const char *or_svid_err_name(enum or_svid_err e)
{
	static const char *const names[OR_SVID_ERR_MAX] = {
		[OR_SVID_OK] = "ok",
		[OR_SVID_NO_CERT] = "no_cert",
		[OR_SVID_CHAIN] = "chain",
		[OR_SVID_URI_COUNT] = "uri_count",
		[OR_SVID_NOT_SPIFFE] = "not_spiffe",
		[OR_SVID_TRUST_DOMAIN] = "trust_domain",
		[OR_SVID_IS_CA] = "is_ca",
		[OR_SVID_EXPIRED] = "expired",
		[OR_SVID_NOT_YET_VALID] = "not_yet_valid",
		[OR_SVID_KEY_USAGE] = "key_usage",
	};

	if ((unsigned int)e >= OR_SVID_ERR_MAX || !names[e])
		return "unknown";
	return names[e];
}

/*
 * Splits "spiffe://td/ns/<ns>/sa/<sa>". Returns 0 or -EINVAL (anything
 * else: other schemes, uppercase or empty trust domain, query, fragment,
 * port, user info, empty or dot segments, percent-encoding).
 */
int or_spiffe_parse(const char *uri, char *td, size_t td_len, char *ns, size_t ns_len, char *sa,
		    size_t sa_len);

#endif
