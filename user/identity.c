// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Workload identities (see identity.h): the cluster CA, loaded from PEM files
 * or created once in the state directory; X.509 SVIDs minted in memory; the
 * SPIFFE ID grammar; and the checks a peer's SVID must pass.
 *
 * Extensions that carry names (SAN, AKID) are built as structures, the rest
 * from constant config strings, so nothing in a workload name is ever parsed
 * as an extension value; names are also held to the SPIFFE grammar first.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "identity.h"
#include "log.h"

/* SVIDs and the demo CA start this much in the past, for peers whose clock runs behind. */
#define OR_SKEW_S 60
#define OR_CA_TTL_S ((time_t)3650 * 24 * 3600)
#define OR_CA_CN "outrider demo CA"
/* The SPIFFE spec caps the trust domain at 255 characters. */
#define OR_TD_MAX 255
/* How long a second agent waits for the first one to finish creating the demo CA. */
#define OR_CA_LOCK_WAIT_MS 10000

__attribute__((format(printf, 4, 5))) static int fail(char *err, size_t errlen, int rc,
						      const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

/* The most specific queued OpenSSL reason, for an error message; empties the queue. */
static const char *ssl_reason(void)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;

	ERR_clear_error();
	return r ? r : "unknown error";
}

/* ---- SPIFFE IDs ---- */

static bool td_char(char c, bool upper_ok)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
	       c == '_' || (upper_ok && c >= 'A' && c <= 'Z');
}

static bool seg_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '-' || c == '_';
}

static bool td_valid(const char *td)
{
	size_t n = 0;

	for (; td[n]; n++)
		if (!td_char(td[n], false))
			return false;
	return n > 0 && n <= OR_TD_MAX;
}

struct span {
	const char *s;
	size_t len;
};

static bool span_is(struct span sp, const char *lit)
{
	return sp.len == strlen(lit) && memcmp(sp.s, lit, sp.len) == 0;
}

/*
 * Splits spiffe://<td>/ns/<ns>/sa/<sa>. Every character outside the two
 * grammars is refused, which is what rules out '%', '?', '#', ':' (port) and
 * '@' (user info). upper_td lets uppercase through in the trust domain only,
 * so that verify can report "another trust domain" rather than "not SPIFFE".
 */
static int spiffe_split(const char *uri, bool upper_td, struct span *td, struct span *ns,
			struct span *sa)
{
	static const char scheme[] = "spiffe://";
	struct span seg[4];
	const char *p;
	int n = 0;

	if (strnlen(uri, OR_SPIFFE_ID_MAX) == OR_SPIFFE_ID_MAX)
		return -EINVAL;
	if (strncmp(uri, scheme, sizeof(scheme) - 1) != 0)
		return -EINVAL;
	p = uri + sizeof(scheme) - 1;
	td->s = p;
	for (; *p && *p != '/'; p++)
		if (!td_char(*p, upper_td))
			return -EINVAL;
	td->len = p - td->s;
	if (td->len == 0 || td->len > OR_TD_MAX)
		return -EINVAL;

	while (*p == '/') {
		const char *s = ++p;
		size_t len;

		for (; *p && *p != '/'; p++)
			if (!seg_char(*p))
				return -EINVAL;
		len = p - s;
		if (len == 0 || (len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.'))
			return -EINVAL;
		if (n == 4)
			return -EINVAL;
		seg[n++] = (struct span){ s, len };
	}
	if (n != 4 || !span_is(seg[0], "ns") || !span_is(seg[2], "sa"))
		return -EINVAL;
	*ns = seg[1];
	*sa = seg[3];
	return 0;
}

/* NULL buf: the caller only wants the check. */
static int copy_span(char *buf, size_t len, struct span sp)
{
	if (!buf)
		return 0;
	if (sp.len >= len)
		return -EINVAL;
	memcpy(buf, sp.s, sp.len);
	buf[sp.len] = '\0';
	return 0;
}

int or_spiffe_parse(const char *uri, char *td, size_t td_len, char *ns, size_t ns_len, char *sa,
		    size_t sa_len)
{
	struct span t, n, s;

	if (!uri || spiffe_split(uri, false, &t, &n, &s))
		return -EINVAL;
	if (copy_span(td, td_len, t) || copy_span(ns, ns_len, n) || copy_span(sa, sa_len, s))
		return -EINVAL;
	return 0;
}

int or_spiffe_id(const char *trust_domain, const char *ns, const char *sa, char *buf, size_t len)
{
	int n = snprintf(buf, len, "spiffe://%s/ns/%s/sa/%s", trust_domain, ns, sa);

	if (n < 0 || (size_t)n >= len) {
		if (len)
			buf[0] = '\0';
		return -ENAMETOOLONG;
	}
	return 0;
}

/* ---- certificate building blocks ---- */

static EVP_PKEY *p256_key(void)
{
	return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
}

/* EdDSA signs the message itself: no separate digest. */
static const EVP_MD *sign_md(EVP_PKEY *key)
{
	int id = EVP_PKEY_get_id(key);

	return id == EVP_PKEY_ED25519 || id == EVP_PKEY_ED448 ? NULL : EVP_sha256();
}

/* 128 random bits: unpredictable, and 17 DER octets at most (RFC 5280 allows 20). */
static int set_serial(X509 *x)
{
	unsigned char b[16];
	ASN1_INTEGER *ai = NULL;
	BIGNUM *bn = NULL;
	int ret = -ENOMEM;

	if (RAND_bytes(b, sizeof(b)) != 1)
		return -EIO;
	bn = BN_bin2bn(b, sizeof(b), NULL);
	if (!bn)
		goto out;
	if (BN_is_zero(bn) && !BN_one(bn))
		goto out;
	ai = BN_to_ASN1_INTEGER(bn, NULL);
	if (!ai || !X509_set_serialNumber(x, ai))
		goto out;
	ret = 0;
out:
	ASN1_INTEGER_free(ai);
	BN_free(bn);
	return ret;
}

/* A v3 certificate with everything but extensions and signature. Returns NULL on failure. */
static X509 *cert_skeleton(EVP_PKEY *pub, const X509_NAME *subject, const X509_NAME *issuer,
			   time_t not_before, time_t not_after)
{
	X509 *x = X509_new();

	if (!x)
		return NULL;
	if (!X509_set_version(x, X509_VERSION_3) || set_serial(x) ||
	    !ASN1_TIME_set(X509_getm_notBefore(x), not_before) ||
	    !ASN1_TIME_set(X509_getm_notAfter(x), not_after) || !X509_set_subject_name(x, subject) ||
	    !X509_set_issuer_name(x, issuer) || !X509_set_pubkey(x, pub)) {
		X509_free(x);
		return NULL;
	}
	return x;
}

/* One extension from a constant OpenSSL config value ("critical,CA:FALSE"). */
static int add_ext(X509 *x, int nid, const char *value)
{
	X509_EXTENSION *ext;
	X509V3_CTX ctx;
	int ret = 0;

	X509V3_set_ctx(&ctx, NULL, x, NULL, NULL, 0);
	ext = X509V3_EXT_nconf_nid(NULL, &ctx, nid, value);
	if (!ext)
		return -EINVAL;
	if (!X509_add_ext(x, ext, -1))
		ret = -ENOMEM;
	X509_EXTENSION_free(ext);
	return ret;
}

static int add_uri_san(X509 *x, const char *uri)
{
	GENERAL_NAMES *gens = GENERAL_NAMES_new();
	GENERAL_NAME *gn = GENERAL_NAME_new();
	ASN1_IA5STRING *ia5 = ASN1_IA5STRING_new();
	int ret = -ENOMEM;

	if (!gens || !gn || !ia5 || !ASN1_STRING_set(ia5, uri, -1))
		goto out;
	GENERAL_NAME_set0_value(gn, GEN_URI, ia5);
	ia5 = NULL;
	if (!sk_GENERAL_NAME_push(gens, gn))
		goto out;
	gn = NULL;
	if (X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT) != 1)
		goto out;
	ret = 0;
out:
	ASN1_IA5STRING_free(ia5);
	GENERAL_NAME_free(gn);
	GENERAL_NAMES_free(gens);
	return ret;
}

/*
 * The issuer's subjectKeyIdentifier, or the RFC 5280 method 1 hash of its
 * key when a mounted CA has none, so verifiers can pick the right CA key.
 */
static int add_akid(X509 *x, X509 *issuer)
{
	const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id(issuer);
	AUTHORITY_KEYID *akid = AUTHORITY_KEYID_new();
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen;
	int ret = -ENOMEM;

	if (!akid)
		return -ENOMEM;
	if (ski) {
		akid->keyid = ASN1_OCTET_STRING_dup(ski);
	} else {
		if (!X509_pubkey_digest(issuer, EVP_sha1(), md, &mdlen))
			goto out;
		akid->keyid = ASN1_OCTET_STRING_new();
		if (akid->keyid && !ASN1_OCTET_STRING_set(akid->keyid, md, mdlen))
			goto out;
	}
	if (!akid->keyid)
		goto out;
	if (X509_add1_ext_i2d(x, NID_authority_key_identifier, akid, 0, X509V3_ADD_DEFAULT) != 1)
		goto out;
	ret = 0;
out:
	AUTHORITY_KEYID_free(akid);
	return ret;
}

static int asn1_to_time(const ASN1_TIME *a, time_t *t)
{
	struct tm tm;

	if (!a || !ASN1_TIME_to_tm(a, &tm))
		return -EINVAL;
	*t = timegm(&tm);
	return 0;
}

/* ---- the CA ---- */

/* Takes cert and key: freed here on failure, owned by *out on success. */
static int ca_new(X509 *cert, EVP_PKEY *key, const char *trust_domain, struct or_ca **out)
{
	struct or_ca *ca = calloc(1, sizeof(*ca));

	if (!ca)
		goto err_free;
	ca->cert = cert;
	ca->key = key;
	ca->trust_domain = strdup(trust_domain);
	ca->bundle = X509_STORE_new();
	if (!ca->trust_domain || !ca->bundle || !X509_STORE_add_cert(ca->bundle, cert)) {
		or_ca_free(ca);
		return -ENOMEM;
	}
	*out = ca;
	return 0;

err_free:
	X509_free(cert);
	EVP_PKEY_free(key);
	return -ENOMEM;
}

void or_ca_free(struct or_ca *ca)
{
	if (!ca)
		return;
	X509_STORE_free(ca->bundle);
	X509_free(ca->cert);
	EVP_PKEY_free(ca->key);
	free(ca->trust_domain);
	free(ca->cert_path);
	free(ca->key_path);
	free(ca);
}

/* Where the CA came from, for or_ca_check. 0 or -ENOMEM (then ca is freed). */
static int ca_remember_paths(struct or_ca *ca, const char *cert_path, const char *key_path)
{
	ca->cert_path = strdup(cert_path);
	ca->key_path = strdup(key_path);
	if (stat(cert_path, &ca->seen[0]) || stat(key_path, &ca->seen[1]))
		memset(ca->seen, 0, sizeof(ca->seen));
	return ca->cert_path && ca->key_path ? 0 : -ENOMEM;
}

/* Never prompt on a terminal for a passphrase: encrypted keys are not supported. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf, (void)size, (void)rwflag, (void)u;
	return -1;
}

static int read_cert(const char *path, X509 **out, char *err, size_t errlen)
{
	FILE *f = fopen(path, "re");

	if (!f)
		return fail(err, errlen, -errno, "%s: %s", path, strerror(errno));
	*out = PEM_read_X509(f, NULL, no_passphrase, NULL);
	fclose(f);
	if (!*out)
		return fail(err, errlen, -EINVAL, "%s: not a PEM certificate (%s)", path,
			    ssl_reason());
	return 0;
}

static int read_key(const char *path, EVP_PKEY **out, char *err, size_t errlen)
{
	FILE *f = fopen(path, "re");

	if (!f)
		return fail(err, errlen, -errno, "%s: %s", path, strerror(errno));
	*out = PEM_read_PrivateKey(f, NULL, no_passphrase, NULL);
	fclose(f);
	if (!*out)
		return fail(err, errlen, -EINVAL,
			    "%s: not an unencrypted PEM private key (%s)", path, ssl_reason());
	return 0;
}

static void fmt_time(const ASN1_TIME *a, char *buf, size_t len)
{
	struct tm tm;

	if (!a || !ASN1_TIME_to_tm(a, &tm) || !strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, len, "an unreadable time");
}

/* What a CA certificate must be, checked once at load; reasons name cert_path. */
static int check_ca_cert(const char *cert_path, const char *key_path, X509 *cert, EVP_PKEY *key,
			 time_t now, char *err, size_t errlen)
{
	uint32_t flags;
	char when[32];

	if (X509_check_private_key(cert, key) != 1) {
		ERR_clear_error();
		return fail(err, errlen, -EINVAL, "%s: the key does not match the certificate %s",
			    key_path, cert_path);
	}
	flags = X509_get_extension_flags(cert);
	if (flags & EXFLAG_INVALID)
		return fail(err, errlen, -EINVAL, "%s: malformed certificate extensions",
			    cert_path);
	if (!(flags & EXFLAG_CA))
		return fail(err, errlen, -EINVAL,
			    "%s: not a CA certificate (basicConstraints CA:TRUE missing)", cert_path);
	if (!(flags & EXFLAG_KUSAGE) || !(X509_get_key_usage(cert) & KU_KEY_CERT_SIGN))
		return fail(err, errlen, -EINVAL, "%s: key usage lacks keyCertSign", cert_path);
	if (X509_self_signed(cert, 1) != 1) {
		ERR_clear_error();
		return fail(err, errlen, -EINVAL,
			    "%s: not a self-signed root (the trust bundle is this one certificate)",
			    cert_path);
	}
	if (X509_cmp_time(X509_get0_notAfter(cert), &now) <= 0) {
		fmt_time(X509_get0_notAfter(cert), when, sizeof(when));
		return fail(err, errlen, -EINVAL, "%s: expired at %s", cert_path, when);
	}
	if (X509_cmp_time(X509_get0_notBefore(cert), &now) >= 0) {
		fmt_time(X509_get0_notBefore(cert), when, sizeof(when));
		return fail(err, errlen, -EINVAL, "%s: not valid before %s", cert_path, when);
	}
	return 0;
}

static int ca_from_files(const char *cert_path, const char *key_path, const char *trust_domain,
			 struct or_ca **out, char *err, size_t errlen)
{
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	int ret;

	ret = read_cert(cert_path, &cert, err, errlen);
	if (ret)
		goto err_free;
	ret = read_key(key_path, &key, err, errlen);
	if (ret)
		goto err_free;
	ret = check_ca_cert(cert_path, key_path, cert, key, time(NULL), err, errlen);
	if (ret)
		goto err_free;
	ret = ca_new(cert, key, trust_domain, out);
	if (!ret && ca_remember_paths(*out, cert_path, key_path)) {
		or_ca_free(*out);
		*out = NULL;
		ret = -ENOMEM;
	}
	if (ret)
		return fail(err, errlen, ret, "%s: out of memory", cert_path);
	return 0;

err_free:
	EVP_PKEY_free(key);
	X509_free(cert);
	return ret;
}

/* The file is the one seen last time, unchanged (same inode, size, mtime). */
static bool same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

int or_ca_check(struct or_ca *ca, char *err, size_t errlen)
{
	struct or_ca *now = NULL;
	struct stat st[2];
	int ret;

	if (!ca->cert_path)
		return 0;
	/* Asked every second: parse the files only when they changed. */
	if (stat(ca->cert_path, &st[0]) == 0 && stat(ca->key_path, &st[1]) == 0 &&
	    same_file(&st[0], &ca->seen[0]) && same_file(&st[1], &ca->seen[1]))
		return 0;
	ret = ca_from_files(ca->cert_path, ca->key_path, ca->trust_domain, &now, err, errlen);
	ERR_clear_error();
	if (ret)
		return ret;
	if (X509_cmp(now->cert, ca->cert) != 0 || EVP_PKEY_eq(now->key, ca->key) != 1)
		ret = fail(err, errlen, -ESTALE,
			   "%s: another CA than the one loaded at start (a new CA needs a restart)",
			   ca->cert_path);
	else if (stat(ca->cert_path, &ca->seen[0]) || stat(ca->key_path, &ca->seen[1]))
		memset(ca->seen, 0, sizeof(ca->seen)); /* read again next time */
	or_ca_free(now);
	return ret;
}

/* A 10-year self-signed root: CA:TRUE, keyCertSign+cRLSign, subjectKeyIdentifier. */
static int ca_generate(time_t now, X509 **cert_out, EVP_PKEY **key_out)
{
	X509_NAME *name = X509_NAME_new();
	EVP_PKEY *key = p256_key();
	X509 *x = NULL;
	int ret = -ENOMEM;

	if (!name || !key ||
	    !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
					(const unsigned char *)OR_CA_CN, -1, -1, 0))
		goto err_free;
	x = cert_skeleton(key, name, name, now - OR_SKEW_S, now + OR_CA_TTL_S);
	if (!x)
		goto err_free;
	ret = add_ext(x, NID_basic_constraints, "critical,CA:TRUE");
	if (!ret)
		ret = add_ext(x, NID_key_usage, "critical,keyCertSign,cRLSign");
	if (!ret)
		ret = add_ext(x, NID_subject_key_identifier, "hash");
	if (ret)
		goto err_free;
	if (!X509_sign(x, key, EVP_sha256())) {
		ret = -EINVAL;
		goto err_free;
	}
	X509_NAME_free(name);
	*cert_out = x;
	*key_out = key;
	return 0;

err_free:
	X509_free(x);
	EVP_PKEY_free(key);
	X509_NAME_free(name);
	ERR_clear_error();
	return ret;
}

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int ret = 0;

	if (fd == -1)
		return -errno;
	if (fsync(fd) == -1)
		ret = -errno;
	close(fd);
	return ret;
}

/*
 * Writes key (when not NULL) or cert as PEM to path, through a temporary file
 * renamed into place: a reader sees the whole file or none.
 */
static int write_pem(const char *dir, const char *path, mode_t mode, EVP_PKEY *key, X509 *cert,
		     char *err, size_t errlen)
{
	char tmp[PATH_MAX];
	FILE *f = NULL;
	int fd, ok, ret;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", path) >= (int)sizeof(tmp))
		return fail(err, errlen, -ENAMETOOLONG, "%s: path too long", path);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd == -1)
		return fail(err, errlen, -errno, "%s: %s", tmp, strerror(errno));
	if (fchmod(fd, mode) == -1) {
		ret = fail(err, errlen, -errno, "%s: chmod: %s", tmp, strerror(errno));
		close(fd);
		goto err_unlink;
	}
	f = fdopen(fd, "w");
	if (!f) {
		ret = fail(err, errlen, -errno, "%s: %s", tmp, strerror(errno));
		close(fd);
		goto err_unlink;
	}
	ok = key ? PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) : PEM_write_X509(f, cert);
	if (!ok) {
		ret = fail(err, errlen, -EIO, "%s: cannot write PEM (%s)", tmp, ssl_reason());
		fclose(f);
		goto err_unlink;
	}
	if (fflush(f) == EOF || fsync(fileno(f)) == -1) {
		ret = fail(err, errlen, -errno, "%s: %s", tmp, strerror(errno));
		fclose(f);
		goto err_unlink;
	}
	if (fclose(f) == EOF) {
		ret = fail(err, errlen, -errno, "%s: %s", tmp, strerror(errno));
		goto err_unlink;
	}
	if (rename(tmp, path) == -1) {
		ret = fail(err, errlen, -errno, "%s: rename: %s", path, strerror(errno));
		goto err_unlink;
	}
	ret = fsync_dir(dir);
	if (ret)
		return fail(err, errlen, ret, "%s: fsync: %s", dir, strerror(-ret));
	return 0;

err_unlink:
	unlink(tmp);
	return ret;
}

/* mkdir -p: parents 0755, the directory itself 0700 (modes of existing ones are left alone). */
static int mkdir_p(const char *dir, char *err, size_t errlen)
{
	char buf[PATH_MAX];
	struct stat st;
	size_t n;

	n = strlen(dir);
	if (n == 0 || n >= sizeof(buf))
		return fail(err, errlen, -ENAMETOOLONG, "state_dir: bad length");
	memcpy(buf, dir, n + 1);
	while (n > 1 && buf[n - 1] == '/')
		buf[--n] = '\0';
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) == -1 && errno != EEXIST)
			return fail(err, errlen, -errno, "%s: mkdir: %s", buf, strerror(errno));
		*p = '/';
	}
	if (mkdir(buf, 0700) == -1 && errno != EEXIST)
		return fail(err, errlen, -errno, "%s: mkdir: %s", buf, strerror(errno));
	if (stat(buf, &st) == -1)
		return fail(err, errlen, -errno, "%s: %s", buf, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return fail(err, errlen, -ENOTDIR, "%s: not a directory", buf);
	return 0;
}

/*
 * An exclusive flock on <state_dir>/ca.lock. Unlike an O_EXCL lock file, the
 * kernel drops it when its holder dies, so a crash never leaves a stale
 * lock. The file itself stays: unlinking a lock file others may be waiting
 * on would let two holders in. Returns the fd or -errno.
 */
static int lock_state_dir(const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	int waited_ms = 0, ret;

	if (fd == -1)
		return fail(err, errlen, -errno, "%s: %s", path, strerror(errno));
	while (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		if (errno != EWOULDBLOCK && errno != EINTR) {
			ret = fail(err, errlen, -errno, "%s: flock: %s", path, strerror(errno));
			close(fd);
			return ret;
		}
		if (waited_ms >= OR_CA_LOCK_WAIT_MS) {
			close(fd);
			return fail(err, errlen, -ETIMEDOUT, "%s: still held after %d s", path,
				    OR_CA_LOCK_WAIT_MS / 1000);
		}
		usleep(10 * 1000);
		waited_ms += 10;
	}
	return fd;
}

/* 1 if path exists, 0 if not, -errno when it cannot be told. */
static int exists(const char *path)
{
	struct stat st;

	if (stat(path, &st) == 0)
		return 1;
	return errno == ENOENT ? 0 : -errno;
}

/*
 * The key is renamed into place before the certificate, so ca.crt marks a
 * finished CA: a reader that finds it finds the key too, and a ca.key alone
 * is what a creator that died half way leaves behind.
 */
static int ca_create(const char *dir, const char *crt, const char *keyp, const char *trust_domain,
		     struct or_ca **out, char *err, size_t errlen)
{
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	int ret;

	ret = ca_generate(time(NULL), &cert, &key);
	if (ret)
		return fail(err, errlen, ret, "%s: cannot create the demo CA", crt);
	ret = write_pem(dir, keyp, 0600, key, NULL, err, errlen);
	if (ret)
		goto err_free;
	ret = write_pem(dir, crt, 0644, NULL, cert, err, errlen);
	if (ret)
		goto err_free;
	ret = ca_new(cert, key, trust_domain, out);
	if (!ret && ca_remember_paths(*out, crt, keyp)) {
		or_ca_free(*out);
		*out = NULL;
		ret = -ENOMEM;
	}
	if (ret)
		return fail(err, errlen, ret, "%s: out of memory", crt);
	or_warn("created a demo CA: give the agents a cluster CA outside demos", "cert=%s", crt);
	return 0;

err_free:
	EVP_PKEY_free(key);
	X509_free(cert);
	return ret;
}

static int ca_from_state_dir(const char *dir, const char *trust_domain, struct or_ca **out,
			     char *err, size_t errlen)
{
	char crt[PATH_MAX], key[PATH_MAX], lock[PATH_MAX];
	int ret, lock_fd;

	if (snprintf(crt, sizeof(crt), "%s/ca.crt", dir) >= (int)sizeof(crt) ||
	    snprintf(key, sizeof(key), "%s/ca.key", dir) >= (int)sizeof(key) ||
	    snprintf(lock, sizeof(lock), "%s/ca.lock", dir) >= (int)sizeof(lock))
		return fail(err, errlen, -ENAMETOOLONG, "%s: path too long", dir);
	ret = mkdir_p(dir, err, errlen);
	if (ret)
		return ret;

	/* Already there: no lock, so a read-only state_dir with a CA in it works. */
	ret = exists(crt);
	if (ret < 0)
		return fail(err, errlen, ret, "%s: %s", crt, strerror(-ret));
	if (ret)
		return ca_from_files(crt, key, trust_domain, out, err, errlen);

	lock_fd = lock_state_dir(lock, err, errlen);
	if (lock_fd < 0)
		return lock_fd;
	/* Another agent may have created it while we waited for the lock. */
	ret = exists(crt);
	if (ret < 0) {
		ret = fail(err, errlen, ret, "%s: %s", crt, strerror(-ret));
	} else if (ret) {
		ret = ca_from_files(crt, key, trust_domain, out, err, errlen);
	} else {
		if (exists(key) == 1)
			or_warn("replacing a CA key left without its certificate", "key=%s", key);
		ret = ca_create(dir, crt, key, trust_domain, out, err, errlen);
	}
	close(lock_fd);
	return ret;
}

int or_ca_load(const char *cert_path, const char *key_path, const char *state_dir,
	       const char *trust_domain, struct or_ca **out, char *err, size_t errlen)
{
	int ret;

	if (err && errlen)
		err[0] = '\0';
	if (!out)
		return fail(err, errlen, -EINVAL, "ca: no output");
	*out = NULL;
	if (!trust_domain || !td_valid(trust_domain))
		return fail(err, errlen, -EINVAL,
			    "trust_domain \"%s\": want 1-255 of a-z, 0-9, '.', '-', '_'",
			    trust_domain ? trust_domain : "");
	if (cert_path || key_path) {
		if (!cert_path || !key_path)
			return fail(err, errlen, -EINVAL, "ca: cert and key go together");
		ret = ca_from_files(cert_path, key_path, trust_domain, out, err, errlen);
	} else if (state_dir) {
		ret = ca_from_state_dir(state_dir, trust_domain, out, err, errlen);
	} else {
		return fail(err, errlen, -EINVAL, "ca: neither cert/key nor a state_dir");
	}
	ERR_clear_error();
	return ret;
}

/* ---- SVIDs ---- */

int or_svid_mint(const struct or_ca *ca, const char *ns, const char *sa, uint32_t ttl_s,
		 time_t now, struct or_svid **out)
{
	X509_NAME *name = NULL;
	struct or_svid *s;
	time_t ca_end;
	int ret;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!ca || !ca->cert || !ca->key || !ca->trust_domain || !ns || !sa || ttl_s == 0)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	ret = or_spiffe_id(ca->trust_domain, ns, sa, s->id, sizeof(s->id));
	if (ret)
		goto err_free;
	/* A '/' in ns or sa would add a segment: the 4-segment shape proves each is one. */
	ret = or_spiffe_parse(s->id, NULL, 0, NULL, 0, NULL, 0);
	if (ret)
		goto err_free;

	ret = -EINVAL;
	if (asn1_to_time(X509_get0_notAfter(ca->cert), &ca_end))
		goto err_free;
	if (ca_end <= now) {
		ret = -EKEYEXPIRED;
		goto err_free;
	}
	s->not_before = now - OR_SKEW_S;
	s->not_after = now + (time_t)ttl_s;
	/* A leaf cannot outlive its CA: no verifier would accept it past that. */
	if (s->not_after > ca_end)
		s->not_after = ca_end;

	ret = -ENOMEM;
	s->key = p256_key();
	name = X509_NAME_new();
	if (!s->key || !name ||
	    !X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"outrider",
					-1, -1, 0))
		goto err_free;
	s->cert = cert_skeleton(s->key, name, X509_get_subject_name(ca->cert), s->not_before,
				s->not_after);
	if (!s->cert)
		goto err_free;
	ret = add_ext(s->cert, NID_basic_constraints, "critical,CA:FALSE");
	if (!ret)
		ret = add_ext(s->cert, NID_key_usage, "critical,digitalSignature");
	if (!ret)
		ret = add_ext(s->cert, NID_ext_key_usage, "serverAuth,clientAuth");
	if (!ret)
		ret = add_ext(s->cert, NID_subject_key_identifier, "hash");
	if (!ret)
		ret = add_akid(s->cert, ca->cert);
	if (!ret)
		ret = add_uri_san(s->cert, s->id);
	if (ret)
		goto err_free;
	if (!X509_sign(s->cert, ca->key, sign_md(ca->key))) {
		ret = -EINVAL;
		goto err_free;
	}
	X509_NAME_free(name);
	*out = s;
	return 0;

err_free:
	X509_NAME_free(name);
	or_svid_free(s);
	ERR_clear_error();
	return ret;
}

void or_svid_free(struct or_svid *s)
{
	if (!s)
		return;
	X509_free(s->cert);
	EVP_PKEY_free(s->key);
	free(s);
}

/*
 * Half way between issuance and expiry. Issuance is not_before plus the
 * skew: halving the backdated span would put the renewal of a 60 s SVID at
 * the moment it was minted.
 */
time_t or_svid_renew_at(const struct or_svid *s)
{
	time_t issued = s->not_before + OR_SKEW_S;

	if (issued > s->not_after)
		issued = s->not_before;
	return issued + (s->not_after - issued) / 2;
}

/* ---- verification ---- */

static enum or_svid_err verify_chain(X509_STORE *bundle, X509 *leaf, STACK_OF(X509) *chain,
				     time_t now)
{
	enum or_svid_err e = OR_SVID_CHAIN;
	X509_STORE_CTX *ctx;

	if (!bundle)
		return OR_SVID_CHAIN;
	ctx = X509_STORE_CTX_new();
	if (!ctx)
		return OR_SVID_CHAIN;
	if (X509_STORE_CTX_init(ctx, bundle, leaf, chain) != 1)
		goto out;
	/* Sets X509_V_FLAG_USE_CHECK_TIME: the caller's clock, not the system's. */
	X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx), now);
	if (X509_verify_cert(ctx) == 1) {
		e = OR_SVID_OK;
		goto out;
	}
	switch (X509_STORE_CTX_get_error(ctx)) {
	case X509_V_ERR_CERT_HAS_EXPIRED:
		e = OR_SVID_EXPIRED;
		break;
	case X509_V_ERR_CERT_NOT_YET_VALID:
		e = OR_SVID_NOT_YET_VALID;
		break;
	default:
		e = OR_SVID_CHAIN;
	}
out:
	X509_STORE_CTX_free(ctx);
	return e;
}

/* The one URI SAN, as a C string. */
static enum or_svid_err leaf_uri(X509 *leaf, char *uri, size_t len)
{
	const ASN1_IA5STRING *u = NULL;
	enum or_svid_err e = OR_SVID_OK;
	GENERAL_NAMES *gens;
	int n_uri = 0, n;

	/* NULL also when the extension is repeated: no single answer, so no URI. */
	gens = X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL, NULL);
	if (!gens)
		return OR_SVID_URI_COUNT;
	for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
		const GENERAL_NAME *gn = sk_GENERAL_NAME_value(gens, i);

		if (gn->type == GEN_URI) {
			n_uri++;
			u = gn->d.uniformResourceIdentifier;
		}
	}
	if (n_uri != 1) {
		e = OR_SVID_URI_COUNT;
		goto out;
	}
	n = ASN1_STRING_length(u);
	if (n <= 0 || (size_t)n >= len || memchr(ASN1_STRING_get0_data(u), 0, n)) {
		e = OR_SVID_NOT_SPIFFE;
		goto out;
	}
	memcpy(uri, ASN1_STRING_get0_data(u), n);
	uri[n] = '\0';
out:
	GENERAL_NAMES_free(gens);
	return e;
}

/* The SVID rules on the leaf's contents; the caller has checked trust and time. */
static enum or_svid_err check_contents(X509 *leaf, const char *trust_domain, char *id,
				       size_t id_len)
{
	char uri[OR_SPIFFE_ID_MAX];
	struct span td, ns, sa;
	enum or_svid_err e;
	uint32_t flags, ku;

	e = leaf_uri(leaf, uri, sizeof(uri));
	if (e != OR_SVID_OK)
		return e;
	if (spiffe_split(uri, false, &td, &ns, &sa))
		/* Well formed but for case in the trust domain: that is never ours. */
		return spiffe_split(uri, true, &td, &ns, &sa) ? OR_SVID_NOT_SPIFFE :
								 OR_SVID_TRUST_DOMAIN;
	if (!trust_domain || !span_is(td, trust_domain))
		return OR_SVID_TRUST_DOMAIN;

	flags = X509_get_extension_flags(leaf);
	if (flags & EXFLAG_CA)
		return OR_SVID_IS_CA;
	/* No keyUsage extension means "any use", which a leaf must not claim. */
	if (!(flags & EXFLAG_KUSAGE))
		return OR_SVID_KEY_USAGE;
	ku = X509_get_key_usage(leaf);
	if (!(ku & KU_DIGITAL_SIGNATURE) || (ku & (KU_KEY_CERT_SIGN | KU_CRL_SIGN)))
		return OR_SVID_KEY_USAGE;

	/* A truncated ID could match someone else's exact rule: refuse instead. */
	if (id) {
		if (strlen(uri) >= id_len)
			return OR_SVID_NOT_SPIFFE;
		strcpy(id, uri);
	}
	return OR_SVID_OK;
}

/*
 * Trust first (chain, validity), then the contents, so a certificate from
 * outside the bundle is always CHAIN whatever else is wrong with it.
 */
enum or_svid_err or_svid_verify(X509_STORE *bundle, X509 *leaf, STACK_OF(X509) *chain,
				const char *trust_domain, time_t now, char *id, size_t id_len)
{
	enum or_svid_err e;

	if (id && id_len)
		id[0] = '\0';
	if (!leaf)
		return OR_SVID_NO_CERT;
	e = verify_chain(bundle, leaf, chain, now);
	if (e != OR_SVID_OK)
		return e;
	return check_contents(leaf, trust_domain, id, id_len);
}

enum or_svid_err or_svid_recheck(X509 *leaf, const char *trust_domain, time_t now, char *id,
				 size_t id_len)
{
	if (id && id_len)
		id[0] = '\0';
	if (!leaf)
		return OR_SVID_NO_CERT;
	if (X509_cmp_time(X509_get0_notAfter(leaf), &now) <= 0)
		return OR_SVID_EXPIRED;
	if (X509_cmp_time(X509_get0_notBefore(leaf), &now) > 0)
		return OR_SVID_NOT_YET_VALID;
	return check_contents(leaf, trust_domain, id, id_len);
}
