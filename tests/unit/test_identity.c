// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Workload identities: the CA (created, reloaded, refused), SVID minting, the
 * SPIFFE ID grammar, and the validation table of issue 4. Bad certificates
 * are built here with OpenSSL directly (mint_cert and its knobs), not with
 * the code under test, so a bug there cannot hide in both.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "identity.h"

#define TD "cluster.local"
#define GOOD_ID "spiffe://cluster.local/ns/default/sa/web"

static char tmpdir[64];
static struct or_ca *ca;  /* created in <tmpdir>/state by setup */
static time_t now;

static void tpath(char *buf, const char *name)
{
	snprintf(buf, PATH_MAX, "%s/%s", tmpdir, name);
}

static void setup(void)
{
	char dir[PATH_MAX], err[256] = "";
	int ret;

	strcpy(tmpdir, "/tmp/or_identity.XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir), "mkdtemp: %s", strerror(errno));
	tpath(dir, "state");
	ret = or_ca_load(NULL, NULL, dir, TD, &ca, err, sizeof(err));
	cr_assert_eq(ret, 0, "demo CA in %s: %d %s", dir, ret, err);
	now = time(NULL);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

static void teardown(void)
{
	or_ca_free(ca);
	ca = NULL;
	if (tmpdir[0])
		nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- certificates with knobs ---- */

enum validity { VALID_HOUR, VALID_EXPIRED, VALID_FUTURE };
enum signer { BY_OUR_CA, BY_OTHER_CA, SELF_SIGNED };

struct knobs {
	const char *san; /* subjectAltName config value; NULL: URI:GOOD_ID; "": none */
	const char *bc;  /* basicConstraints; NULL: "critical,CA:FALSE"; "": none */
	const char *ku;  /* keyUsage; NULL: "critical,digitalSignature"; "": none */
	enum validity validity;
	enum signer signer;
};

static void add_conf_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509_EXTENSION *ext;
	X509V3_CTX ctx;

	if (!value[0])
		return;
	X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
	ext = X509V3_EXT_nconf_nid(NULL, &ctx, nid, value);
	cr_assert_not_null(ext, "extension %s = %s", OBJ_nid2sn(nid), value);
	cr_assert(X509_add_ext(x, ext, -1));
	X509_EXTENSION_free(ext);
}

/* issuer NULL: self-signed. The key goes to *key_out, or is freed. */
static X509 *mint_cert(const struct knobs *k, X509 *issuer, EVP_PKEY *issuer_key,
		       EVP_PKEY **key_out)
{
	static long serial = 1000;
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	X509_NAME *name = X509_NAME_new();
	time_t nb = now - 60, na = now + 3600;
	X509 *x = X509_new();

	cr_assert(key && name && x);
	if (k->validity == VALID_EXPIRED) {
		nb = now - 2 * 86400;
		na = now - 86400;
	} else if (k->validity == VALID_FUTURE) {
		nb = now + 86400;
		na = now + 2 * 86400;
	}
	cr_assert(X509_set_version(x, X509_VERSION_3));
	cr_assert(ASN1_INTEGER_set(X509_get_serialNumber(x), serial++));
	cr_assert(ASN1_TIME_set(X509_getm_notBefore(x), nb));
	cr_assert(ASN1_TIME_set(X509_getm_notAfter(x), na));
	cr_assert(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
					     (const unsigned char *)"test cert", -1, -1, 0));
	cr_assert(X509_set_subject_name(x, name));
	cr_assert(X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name));
	cr_assert(X509_set_pubkey(x, key));
	add_conf_ext(x, issuer, NID_basic_constraints, k->bc ? k->bc : "critical,CA:FALSE");
	add_conf_ext(x, issuer, NID_key_usage, k->ku ? k->ku : "critical,digitalSignature");
	add_conf_ext(x, issuer, NID_subject_key_identifier, "hash");
	if (issuer)
		add_conf_ext(x, issuer, NID_authority_key_identifier, "keyid:always");
	add_conf_ext(x, issuer, NID_subject_alt_name, k->san ? k->san : "URI:" GOOD_ID);
	cr_assert(X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()));
	X509_NAME_free(name);
	if (key_out)
		*key_out = key;
	else
		EVP_PKEY_free(key);
	return x;
}

static const struct knobs ca_knobs = {
	.bc = "critical,CA:TRUE",
	.ku = "critical,keyCertSign,cRLSign",
	.san = "",
};

static void write_cert(const char *path, X509 *x)
{
	FILE *f = fopen(path, "w");

	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	cr_assert(PEM_write_X509(f, x));
	fclose(f);
}

static void write_key(const char *path, EVP_PKEY *k)
{
	FILE *f = fopen(path, "w");

	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	cr_assert(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL));
	fclose(f);
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	fputs(text, f);
	fclose(f);
}

/* -1 when absent, else whether it is critical. */
static int ext_critical(X509 *x, int nid)
{
	int i = X509_get_ext_by_NID(x, nid, -1);

	return i < 0 ? -1 : X509_EXTENSION_get_critical(X509_get_ext(x, i));
}

static void expect_p256(EVP_PKEY *k, const char *what)
{
	char group[64] = "";
	size_t len = 0;

	cr_expect_eq(EVP_PKEY_get_base_id(k), EVP_PKEY_EC, "%s: EC key", what);
	cr_expect(EVP_PKEY_get_group_name(k, group, sizeof(group), &len), "%s: group", what);
	cr_expect_str_eq(group, "prime256v1", "%s: P-256, got %s", what, group);
}

static void cert_digest(X509 *x, unsigned char md[32])
{
	unsigned int n = 0;

	cr_assert(X509_digest(x, EVP_sha256(), md, &n));
	cr_assert_eq(n, 32);
}

/* ---- the CA ---- */

Test(ca, created_in_state_dir, .init = setup, .fini = teardown)
{
	char dir[PATH_MAX], file[PATH_MAX + 16], err[256] = "", cn[64] = "";
	struct or_ca *c = NULL;
	struct stat st;
	int ret;

	/* A nested directory that does not exist yet: mkdir -p. */
	tpath(dir, "a/b/state");
	ret = or_ca_load(NULL, NULL, dir, "example.org", &c, err, sizeof(err));
	cr_assert_eq(ret, 0, "%d %s", ret, err);
	cr_assert_eq(stat(dir, &st), 0);
	cr_expect_eq(st.st_mode & 07777, 0700, "state_dir mode %o", st.st_mode & 07777);
	snprintf(file, sizeof(file), "%s/ca.key", dir);
	cr_assert_eq(stat(file, &st), 0, "ca.key exists");
	cr_expect_eq(st.st_mode & 07777, 0600, "ca.key mode %o", st.st_mode & 07777);
	snprintf(file, sizeof(file), "%s/ca.crt", dir);
	cr_assert_eq(stat(file, &st), 0, "ca.crt exists");

	cr_expect_str_eq(c->trust_domain, "example.org");
	cr_expect_eq(X509_check_private_key(c->cert, c->key), 1, "key matches cert");
	expect_p256(c->key, "CA key");
	cr_expect_eq(X509_get_signature_nid(c->cert), NID_ecdsa_with_SHA256);
	X509_NAME_get_text_by_NID(X509_get_subject_name(c->cert), NID_commonName, cn, sizeof(cn));
	cr_expect_str_eq(cn, "outrider demo CA");
	cr_expect_eq(X509_self_signed(c->cert, 1), 1, "self-signed");
	cr_expect_eq(ext_critical(c->cert, NID_basic_constraints), 1, "basicConstraints critical");
	cr_expect(X509_get_extension_flags(c->cert) & EXFLAG_CA, "CA:TRUE");
	cr_expect_eq(ext_critical(c->cert, NID_key_usage), 1, "keyUsage critical");
	cr_expect_eq(X509_get_key_usage(c->cert), KU_KEY_CERT_SIGN | KU_CRL_SIGN);
	cr_expect_not_null(X509_get0_subject_key_id(c->cert), "subjectKeyIdentifier");
	/* Ten years, give or take a leap day and the skew. */
	cr_expect_gt(ASN1_TIME_cmp_time_t(X509_get0_notAfter(c->cert), now + 3649L * 86400), 0);
	cr_expect_lt(ASN1_TIME_cmp_time_t(X509_get0_notAfter(c->cert), now + 3653L * 86400), 0);
	cr_expect_lt(ASN1_TIME_cmp_time_t(X509_get0_notBefore(c->cert), now), 0);
	or_ca_free(c);
}

Test(ca, reloaded_from_state_dir_is_the_same, .init = setup, .fini = teardown)
{
	char dir[PATH_MAX], crt[PATH_MAX], key[PATH_MAX], err[256] = "";
	struct or_ca *again = NULL, *files = NULL;
	int ret;

	tpath(dir, "state");
	ret = or_ca_load(NULL, NULL, dir, TD, &again, err, sizeof(err));
	cr_assert_eq(ret, 0, "%d %s", ret, err);
	cr_expect_eq(X509_cmp(again->cert, ca->cert), 0, "same certificate");
	cr_expect_eq(EVP_PKEY_eq(again->key, ca->key), 1, "same key");

	/* The same files given as explicit paths (a mounted Secret). */
	tpath(crt, "state/ca.crt");
	tpath(key, "state/ca.key");
	ret = or_ca_load(crt, key, NULL, TD, &files, err, sizeof(err));
	cr_assert_eq(ret, 0, "%d %s", ret, err);
	cr_expect_eq(X509_cmp(files->cert, ca->cert), 0, "same certificate");
	cr_expect_eq(EVP_PKEY_eq(files->key, ca->key), 1, "same key");
	or_ca_free(again);
	or_ca_free(files);
}

/* or_ca_check: the CA's files still hold it; gone or replaced, it is unavailable. */
Test(ca, check_follows_its_files, .init = setup, .fini = teardown)
{
	char crt[PATH_MAX], key[PATH_MAX], away[PATH_MAX], other_dir[PATH_MAX], err[256] = "";
	struct or_ca *other = NULL;
	int ret;

	cr_assert_eq(or_ca_check(ca, err, sizeof(err)), 0, "%s", err);
	tpath(crt, "state/ca.crt");
	tpath(key, "state/ca.key");
	tpath(away, "state/ca.key.away");
	cr_assert_eq(rename(key, away), 0);
	ret = or_ca_check(ca, err, sizeof(err));
	cr_expect_eq(ret, -ENOENT, "key gone: %d %s", ret, err);
	cr_expect(strstr(err, "ca.key") != NULL, "names the file: %s", err);
	cr_assert_eq(rename(away, key), 0);
	cr_expect_eq(or_ca_check(ca, err, sizeof(err)), 0, "back: %s", err);

	/* Another CA in its place (a rotated Secret): not this agent's to use. */
	tpath(other_dir, "other");
	cr_assert_eq(or_ca_load(NULL, NULL, other_dir, TD, &other, err, sizeof(err)), 0, "%s", err);
	tpath(away, "other/ca.crt");
	cr_assert_eq(rename(away, crt), 0);
	tpath(away, "other/ca.key");
	cr_assert_eq(rename(away, key), 0);
	ret = or_ca_check(ca, err, sizeof(err));
	cr_expect_eq(ret, -ESTALE, "replaced: %d %s", ret, err);
	cr_expect(strstr(err, "another CA") != NULL, "%s", err);
	or_ca_free(other);
}

/* Eight agents start at once on an empty state_dir: one CA, the same for all. */
Test(ca, concurrent_creation_ends_with_one_ca, .init = setup, .fini = teardown)
{
	enum { N = 8 };
	unsigned char want[32], got[N][32];
	char dir[PATH_MAX], err[256] = "";
	struct or_ca *c = NULL;
	int go[2], res[2], status;
	pid_t pids[N];
	ssize_t n;

	tpath(dir, "shared");
	cr_assert_eq(pipe(go), 0);
	cr_assert_eq(pipe(res), 0);
	for (int i = 0; i < N; i++) {
		pids[i] = fork();
		cr_assert_neq(pids[i], -1);
		if (pids[i] == 0) {
			unsigned char md[32] = { 0 };
			unsigned int len;
			char b;
			int rc;

			close(go[1]);
			while (read(go[0], &b, 1) > 0)
				;
			rc = or_ca_load(NULL, NULL, dir, TD, &c, err, sizeof(err));
			if (rc == 0)
				X509_digest(c->cert, EVP_sha256(), md, &len);
			else
				fprintf(stderr, "child %d: %s\n", i, err);
			if (write(res[1], md, sizeof(md)) != sizeof(md))
				rc = -EIO;
			or_ca_free(c);
			_exit(rc ? 1 : 0);
		}
	}
	close(go[0]);
	close(res[1]);
	close(go[1]); /* all children start now */
	for (int i = 0; i < N; i++) {
		cr_assert_eq(waitpid(pids[i], &status, 0), pids[i]);
		cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child %d failed", i);
	}
	n = read(res[0], got, sizeof(got));
	close(res[0]);
	cr_assert_eq(n, (ssize_t)sizeof(got), "read %zd digests' worth", n);

	cr_assert_eq(or_ca_load(NULL, NULL, dir, TD, &c, err, sizeof(err)), 0, "%s", err);
	cert_digest(c->cert, want);
	or_ca_free(c);
	for (int i = 0; i < N; i++)
		cr_expect_eq(memcmp(got[i], want, 32), 0, "child %d loaded another CA", i);
}

/* A key left by a creator that died before writing ca.crt is replaced. */
Test(ca, lone_key_in_state_dir_is_replaced, .init = setup, .fini = teardown)
{
	char dir[PATH_MAX], key[PATH_MAX], err[256] = "";
	struct or_ca *c = NULL;

	tpath(dir, "crashed");
	cr_assert_eq(mkdir(dir, 0700), 0);
	tpath(key, "crashed/ca.key");
	write_text(key, "half written");
	cr_assert_eq(or_ca_load(NULL, NULL, dir, TD, &c, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(X509_check_private_key(c->cert, c->key), 1);
	or_ca_free(c);
}

static void expect_load_error(const char *crt, const char *key, const char *dir, const char *td,
			      int want_rc, const char *want_prefix, const char *want_text)
{
	struct or_ca *c = (struct or_ca *)0x1;
	char err[512] = "";
	int ret;

	ret = or_ca_load(crt, key, dir, td, &c, err, sizeof(err));
	cr_expect_eq(ret, want_rc, "rc %d, want %d (%s)", ret, want_rc, err);
	cr_expect_null(c, "no CA on error");
	cr_expect_eq(strncmp(err, want_prefix, strlen(want_prefix)), 0, "\"%s\" starts with \"%s\"",
		     err, want_prefix);
	cr_expect_not_null(strstr(err, want_text), "\"%s\" says \"%s\"", err, want_text);
	or_ca_free(c == (struct or_ca *)0x1 ? NULL : c);
}

Test(ca, load_errors_name_the_file_and_the_reason, .init = setup, .fini = teardown)
{
	char crt[PATH_MAX], key[PATH_MAX], junk[PATH_MAX], other_key[PATH_MAX];
	char leaf[PATH_MAX], leaf_key[PATH_MAX], nosign[PATH_MAX], nosign_key[PATH_MAX];
	char old[PATH_MAX], old_key[PATH_MAX], inter[PATH_MAX], inter_key[PATH_MAX];
	char missing[PATH_MAX], file_dir[PATH_MAX], half[PATH_MAX];
	struct knobs k;
	EVP_PKEY *pk;
	X509 *x;

	tpath(crt, "state/ca.crt");
	tpath(key, "state/ca.key");
	tpath(missing, "nope.crt");
	tpath(junk, "junk.pem");
	write_text(junk, "this is not PEM\n");

	expect_load_error(missing, key, NULL, TD, -ENOENT, missing, "No such file");
	expect_load_error(junk, key, NULL, TD, -EINVAL, junk, "not a PEM certificate");
	expect_load_error(crt, junk, NULL, TD, -EINVAL, junk, "private key");
	/* The certificate given as the key. */
	expect_load_error(crt, crt, NULL, TD, -EINVAL, crt, "private key");

	tpath(other_key, "other.key");
	pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	write_key(other_key, pk);
	EVP_PKEY_free(pk);
	expect_load_error(crt, other_key, NULL, TD, -EINVAL, other_key, "does not match");

	/* A self-signed leaf: CA:FALSE. */
	tpath(leaf, "leaf.crt");
	tpath(leaf_key, "leaf.key");
	k = (struct knobs){ 0 };
	x = mint_cert(&k, NULL, NULL, &pk);
	write_cert(leaf, x);
	write_key(leaf_key, pk);
	X509_free(x);
	EVP_PKEY_free(pk);
	expect_load_error(leaf, leaf_key, NULL, TD, -EINVAL, leaf, "not a CA");

	/* CA:TRUE but no keyCertSign. */
	tpath(nosign, "nosign.crt");
	tpath(nosign_key, "nosign.key");
	k = (struct knobs){ .bc = "critical,CA:TRUE", .ku = "critical,digitalSignature", .san = "" };
	x = mint_cert(&k, NULL, NULL, &pk);
	write_cert(nosign, x);
	write_key(nosign_key, pk);
	X509_free(x);
	EVP_PKEY_free(pk);
	expect_load_error(nosign, nosign_key, NULL, TD, -EINVAL, nosign, "keyCertSign");

	tpath(old, "old.crt");
	tpath(old_key, "old.key");
	k = ca_knobs;
	k.validity = VALID_EXPIRED;
	x = mint_cert(&k, NULL, NULL, &pk);
	write_cert(old, x);
	write_key(old_key, pk);
	X509_free(x);
	EVP_PKEY_free(pk);
	expect_load_error(old, old_key, NULL, TD, -EINVAL, old, "expired");

	/* An intermediate: the bundle would not be a root. */
	tpath(inter, "inter.crt");
	tpath(inter_key, "inter.key");
	x = mint_cert(&ca_knobs, ca->cert, ca->key, &pk);
	write_cert(inter, x);
	write_key(inter_key, pk);
	X509_free(x);
	EVP_PKEY_free(pk);
	expect_load_error(inter, inter_key, NULL, TD, -EINVAL, inter, "self-signed");

	expect_load_error(crt, NULL, NULL, TD, -EINVAL, "ca:", "go together");
	expect_load_error(NULL, key, NULL, TD, -EINVAL, "ca:", "go together");
	expect_load_error(NULL, NULL, NULL, TD, -EINVAL, "ca:", "state_dir");
	expect_load_error(crt, key, NULL, "Cluster.local", -EINVAL, "trust_domain", "Cluster");
	expect_load_error(crt, key, NULL, "", -EINVAL, "trust_domain", "a-z");
	expect_load_error(crt, key, NULL, NULL, -EINVAL, "trust_domain", "a-z");

	/* state_dir is a file. */
	tpath(file_dir, "junk.pem");
	expect_load_error(NULL, NULL, file_dir, TD, -ENOTDIR, file_dir, "not a directory");

	/* A certificate without its key in state_dir is not overwritten. */
	tpath(half, "half");
	cr_assert_eq(mkdir(half, 0700), 0);
	tpath(half, "half/ca.crt");
	write_cert(half, ca->cert);
	tpath(half, "half/ca.key");
	tpath(file_dir, "half");
	expect_load_error(NULL, NULL, file_dir, TD, -ENOENT, half, "No such file");
}

/* ---- minting ---- */

static X509_EXTENSION *ext_of(X509 *x, int nid)
{
	int i = X509_get_ext_by_NID(x, nid, -1);

	cr_assert_geq(i, 0, "%s present", OBJ_nid2sn(nid));
	cr_assert_lt(X509_get_ext_by_NID(x, nid, i), 0, "%s only once", OBJ_nid2sn(nid));
	return X509_get_ext(x, i);
}

Test(svid, minted_fields_and_extensions, .init = setup, .fini = teardown)
{
	const ASN1_OCTET_STRING *akid_ski, *ca_ski;
	struct or_svid *s = NULL;
	const GENERAL_NAME *gn;
	GENERAL_NAMES *sans;
	BASIC_CONSTRAINTS *bc;
	EVP_PKEY *pub;
	BIGNUM *serial;
	int ret;

	ret = or_svid_mint(ca, "default", "web", 3600, now, &s);
	cr_assert_eq(ret, 0, "mint: %d", ret);
	cr_expect_str_eq(s->id, GOOD_ID);
	cr_expect_eq(X509_get_version(s->cert), X509_VERSION_3);

	expect_p256(s->key, "SVID key");
	pub = X509_get0_pubkey(s->cert);
	cr_expect_eq(EVP_PKEY_eq(pub, s->key), 1, "the certificate carries the SVID key");
	cr_expect_eq(X509_verify(s->cert, ca->key), 1, "signed by the CA key");
	cr_expect_eq(X509_get_signature_nid(s->cert), NID_ecdsa_with_SHA256);
	cr_expect_eq(X509_NAME_cmp(X509_get_issuer_name(s->cert), X509_get_subject_name(ca->cert)),
		     0, "issuer is the CA subject");

	serial = ASN1_INTEGER_to_BN(X509_get0_serialNumber(s->cert), NULL);
	cr_assert_not_null(serial);
	cr_expect_not(BN_is_negative(serial), "serial positive");
	cr_expect_leq(BN_num_bits(serial), 128, "serial has %d bits", BN_num_bits(serial));
	cr_expect_gt(BN_num_bits(serial), 64, "serial has %d bits", BN_num_bits(serial));
	BN_free(serial);

	cr_expect_eq(ASN1_TIME_cmp_time_t(X509_get0_notBefore(s->cert), now - 60), 0);
	cr_expect_eq(ASN1_TIME_cmp_time_t(X509_get0_notAfter(s->cert), now + 3600), 0);
	cr_expect_eq(s->not_before, now - 60);
	cr_expect_eq(s->not_after, now + 3600);

	cr_expect_eq(X509_EXTENSION_get_critical(ext_of(s->cert, NID_basic_constraints)), 1);
	bc = X509_get_ext_d2i(s->cert, NID_basic_constraints, NULL, NULL);
	cr_assert_not_null(bc);
	cr_expect_not(bc->ca, "CA:FALSE");
	BASIC_CONSTRAINTS_free(bc);

	cr_expect_eq(X509_EXTENSION_get_critical(ext_of(s->cert, NID_key_usage)), 1);
	cr_expect_eq(X509_get_key_usage(s->cert), KU_DIGITAL_SIGNATURE);
	ext_of(s->cert, NID_ext_key_usage);
	cr_expect_eq(X509_get_extended_key_usage(s->cert), XKU_SSL_SERVER | XKU_SSL_CLIENT);

	ext_of(s->cert, NID_subject_alt_name);
	sans = X509_get_ext_d2i(s->cert, NID_subject_alt_name, NULL, NULL);
	cr_assert_not_null(sans);
	cr_assert_eq(sk_GENERAL_NAME_num(sans), 1, "exactly one SAN");
	gn = sk_GENERAL_NAME_value(sans, 0);
	cr_expect_eq(gn->type, GEN_URI);
	cr_expect_str_eq((const char *)ASN1_STRING_get0_data(gn->d.uniformResourceIdentifier),
			 GOOD_ID);
	GENERAL_NAMES_free(sans);

	ext_of(s->cert, NID_authority_key_identifier);
	akid_ski = X509_get0_authority_key_id(s->cert);
	ca_ski = X509_get0_subject_key_id(ca->cert);
	cr_assert(akid_ski && ca_ski);
	cr_expect_eq(ASN1_OCTET_STRING_cmp(akid_ski, ca_ski), 0, "AKID = the CA's SKI");
	cr_expect_eq(X509_check_issued(ca->cert, s->cert), X509_V_OK);
	or_svid_free(s);
}

Test(svid, serials_and_keys_differ, .init = setup, .fini = teardown)
{
	struct or_svid *a = NULL, *b = NULL;

	cr_assert_eq(or_svid_mint(ca, "default", "web", 3600, now, &a), 0);
	cr_assert_eq(or_svid_mint(ca, "default", "web", 3600, now, &b), 0);
	cr_expect_neq(ASN1_INTEGER_cmp(X509_get0_serialNumber(a->cert),
				       X509_get0_serialNumber(b->cert)),
		      0, "serials differ");
	cr_expect_neq(EVP_PKEY_eq(a->key, b->key), 1, "keys differ");
	or_svid_free(a);
	or_svid_free(b);
}

Test(svid, renewal_at_half_of_the_ttl, .init = setup, .fini = teardown)
{
	struct or_svid *s = NULL;

	cr_assert_eq(or_svid_mint(ca, "default", "web", 60, now, &s), 0);
	cr_expect_eq(or_svid_renew_at(s), now + 30, "60 s TTL: renew at +30 s, not at once");
	or_svid_free(s);
	cr_assert_eq(or_svid_mint(ca, "default", "web", 86400, now, &s), 0);
	cr_expect_eq(or_svid_renew_at(s), now + 43200);
	or_svid_free(s);
}

Test(svid, mint_refuses_bad_names_and_ttl, .init = setup, .fini = teardown)
{
	static const char *const bad[][2] = {
		{ "a/b", "web" }, { "default", "" }, { "", "web" },    { "..", "web" },
		{ "default", "." }, { "def ault", "web" }, { "default", "w%2f" }, { "ns", "a?b" },
	};
	char longname[OR_SPIFFE_ID_MAX + 16]; /* an ID that cannot fit */
	struct or_svid *s = (struct or_svid *)0x1;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_expect_eq(or_svid_mint(ca, bad[i][0], bad[i][1], 3600, now, &s), -EINVAL,
			     "ns \"%s\" sa \"%s\"", bad[i][0], bad[i][1]);
		cr_expect_null(s);
	}
	cr_expect_eq(or_svid_mint(ca, "default", "web", 0, now, &s), -EINVAL, "ttl 0");
	cr_expect_eq(or_svid_mint(NULL, "default", "web", 60, now, &s), -EINVAL, "no CA");
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	cr_expect_eq(or_svid_mint(ca, "default", longname, 60, now, &s), -ENAMETOOLONG);
	cr_expect_eq(or_svid_mint(ca, "default", "web", 60, now + 11L * 365 * 86400, &s),
		     -EKEYEXPIRED, "after the CA's end");
	cr_expect_null(s);
}

/* A CA that ends in an hour caps a day-long SVID. */
Test(svid, not_after_capped_by_the_ca, .init = setup, .fini = teardown)
{
	char crt[PATH_MAX], key[PATH_MAX], err[256] = "";
	struct or_svid *s = NULL;
	struct or_ca *c = NULL;
	EVP_PKEY *pk;
	X509 *x;

	tpath(crt, "short.crt");
	tpath(key, "short.key");
	x = mint_cert(&ca_knobs, NULL, NULL, &pk);
	write_cert(crt, x);
	write_key(key, pk);
	X509_free(x);
	EVP_PKEY_free(pk);
	cr_assert_eq(or_ca_load(crt, key, NULL, TD, &c, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(or_svid_mint(c, "default", "web", 86400, now, &s), 0);
	cr_expect_eq(s->not_after, now + 3600);
	cr_expect_eq(ASN1_TIME_cmp_time_t(X509_get0_notAfter(s->cert), now + 3600), 0);
	/* A mounted CA with no SKI still gets an AKID on its leaves. */
	cr_expect_not_null(X509_get0_authority_key_id(s->cert));
	cr_expect_eq(or_svid_verify(c->bundle, s->cert, NULL, TD, now, NULL, 0), OR_SVID_OK);
	or_svid_free(s);
	or_ca_free(c);
}

/* ---- verification ---- */

Test(verify, minted_svid_over_its_lifetime, .init = setup, .fini = teardown)
{
	char id[OR_SPIFFE_ID_MAX] = "x", small[10] = "x";
	struct or_svid *s = NULL;
	struct or_ca *other = NULL;
	char dir[PATH_MAX], err[256];
	enum or_svid_err e;

	cr_assert_eq(or_svid_mint(ca, "default", "web", 3600, now, &s), 0);
	e = or_svid_verify(ca->bundle, s->cert, NULL, TD, now, id, sizeof(id));
	cr_expect_eq(e, OR_SVID_OK, "got %s", or_svid_err_name(e));
	cr_expect_str_eq(id, GOOD_ID);

	/* The skew: valid 60 s before minting, not 61. */
	cr_expect_eq(or_svid_verify(ca->bundle, s->cert, NULL, TD, now - 60, NULL, 0), OR_SVID_OK);
	cr_expect_eq(or_svid_verify(ca->bundle, s->cert, NULL, TD, now - 61, NULL, 0),
		     OR_SVID_NOT_YET_VALID);
	/* OpenSSL counts the notAfter second itself as expired. */
	cr_expect_eq(or_svid_verify(ca->bundle, s->cert, NULL, TD, now + 3599, NULL, 0),
		     OR_SVID_OK);
	cr_expect_eq(or_svid_verify(ca->bundle, s->cert, NULL, TD, now + 3600, id, sizeof(id)),
		     OR_SVID_EXPIRED);
	cr_expect_str_eq(id, "", "no ID on failure");

	cr_expect_eq(or_svid_verify(ca->bundle, s->cert, NULL, "other.local", now, NULL, 0),
		     OR_SVID_TRUST_DOMAIN);
	cr_expect_eq(or_svid_verify(ca->bundle, s->cert, NULL, NULL, now, NULL, 0),
		     OR_SVID_TRUST_DOMAIN);
	/* Never a truncated ID. */
	cr_expect_eq(or_svid_verify(ca->bundle, s->cert, NULL, TD, now, small, sizeof(small)),
		     OR_SVID_NOT_SPIFFE);
	cr_expect_str_eq(small, "");

	tpath(dir, "other");
	cr_assert_eq(or_ca_load(NULL, NULL, dir, TD, &other, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(or_svid_verify(other->bundle, s->cert, NULL, TD, now, NULL, 0),
		     OR_SVID_CHAIN);
	cr_expect_eq(or_svid_verify(NULL, s->cert, NULL, TD, now, NULL, 0), OR_SVID_CHAIN);
	or_ca_free(other);
	or_svid_free(s);
}

/* The resumed-session check: the same verdicts on time and contents, no trust. */
Test(verify, recheck_matches_verify_on_time_and_contents, .init = setup, .fini = teardown)
{
	char id[OR_SPIFFE_ID_MAX] = "x";
	struct or_svid *s = NULL;
	static const struct knobs two_uris = { .san = "URI:" GOOD_ID ",URI:spiffe://x/ns/a/sa/b" };
	static const struct knobs is_ca = { .bc = "critical,CA:TRUE" };
	X509 *bad;

	cr_assert_eq(or_svid_mint(ca, "default", "web", 3600, now, &s), 0);
	cr_expect_eq(or_svid_recheck(s->cert, TD, now, id, sizeof(id)), OR_SVID_OK);
	cr_expect_str_eq(id, GOOD_ID);
	for (time_t t = now - 62; t <= now + 3601; t += 1) {
		if (t > now - 59 && t < now + 3598)
			continue; /* only the edges */
		cr_expect_eq(or_svid_recheck(s->cert, TD, t, NULL, 0),
			     or_svid_verify(ca->bundle, s->cert, NULL, TD, t, NULL, 0),
			     "at now%+lld", (long long)(t - now));
	}
	cr_expect_eq(or_svid_recheck(s->cert, "other.local", now, id, sizeof(id)),
		     OR_SVID_TRUST_DOMAIN);
	cr_expect_str_eq(id, "", "no ID on failure");
	cr_expect_eq(or_svid_recheck(NULL, TD, now, NULL, 0), OR_SVID_NO_CERT);

	bad = mint_cert(&two_uris, NULL, NULL, NULL);
	cr_expect_eq(or_svid_recheck(bad, TD, now, NULL, 0), OR_SVID_URI_COUNT);
	X509_free(bad);
	bad = mint_cert(&is_ca, NULL, NULL, NULL);
	cr_expect_eq(or_svid_recheck(bad, TD, now, NULL, 0), OR_SVID_IS_CA);
	X509_free(bad);
	/*
	 * By contract no signature is checked (the chain was, when the session
	 * began): a self-signed leaf with good contents passes the recheck,
	 * never the full verification.
	 */
	bad = mint_cert(&(struct knobs){ 0 }, NULL, NULL, NULL);
	cr_expect_eq(or_svid_recheck(bad, TD, now, NULL, 0), OR_SVID_OK);
	cr_expect_eq(or_svid_verify(ca->bundle, bad, NULL, TD, now, NULL, 0), OR_SVID_CHAIN);
	X509_free(bad);
	or_svid_free(s);
}

Test(verify, null_leaf_is_no_cert, .init = setup, .fini = teardown)
{
	char id[8] = "x";

	cr_expect_eq(or_svid_verify(ca->bundle, NULL, NULL, TD, now, id, sizeof(id)),
		     OR_SVID_NO_CERT);
	cr_expect_str_eq(id, "");
}

Test(verify, intermediate_from_the_chain, .init = setup, .fini = teardown)
{
	STACK_OF(X509) *chain = sk_X509_new_null();
	const struct knobs leaf_knobs = { 0 };
	EVP_PKEY *inter_key;
	X509 *inter, *leaf;

	inter = mint_cert(&ca_knobs, ca->cert, ca->key, &inter_key);
	leaf = mint_cert(&leaf_knobs, inter, inter_key, NULL);
	cr_assert(chain && sk_X509_push(chain, inter));
	cr_expect_eq(or_svid_verify(ca->bundle, leaf, chain, TD, now, NULL, 0), OR_SVID_OK);
	cr_expect_eq(or_svid_verify(ca->bundle, leaf, NULL, TD, now, NULL, 0), OR_SVID_CHAIN,
		     "without the intermediate");
	sk_X509_pop_free(chain, X509_free);
	X509_free(leaf);
	EVP_PKEY_free(inter_key);
}

struct vcase {
	const char *name;
	struct knobs k;
	enum or_svid_err want;
};

/* Issue 4's table, and the neighbours of each case. */
static const struct vcase vcases[] = {
	{ "good", { 0 }, OR_SVID_OK },
	{ "good with a DNS SAN too", { .san = "URI:" GOOD_ID ",DNS:web.default.svc" }, OR_SVID_OK },
	{ "two URI SANs",
	  { .san = "URI:" GOOD_ID ",URI:spiffe://cluster.local/ns/default/sa/db" },
	  OR_SVID_URI_COUNT },
	{ "the same URI twice", { .san = "URI:" GOOD_ID ",URI:" GOOD_ID }, OR_SVID_URI_COUNT },
	{ "no SAN", { .san = "" }, OR_SVID_URI_COUNT },
	{ "DNS SAN only", { .san = "DNS:web.default.svc" }, OR_SVID_URI_COUNT },
	{ "http URI", { .san = "URI:http://cluster.local/ns/default/sa/web" }, OR_SVID_NOT_SPIFFE },
	{ "SPIFFE ID of another shape", { .san = "URI:spiffe://cluster.local/web" },
	  OR_SVID_NOT_SPIFFE },
	{ "percent-encoded path", { .san = "URI:spiffe://cluster.local/ns/default/sa/w%65b" },
	  OR_SVID_NOT_SPIFFE },
	{ "uppercase trust domain", { .san = "URI:spiffe://CLUSTER.LOCAL/ns/default/sa/web" },
	  OR_SVID_TRUST_DOMAIN },
	{ "another trust domain", { .san = "URI:spiffe://other.local/ns/default/sa/web" },
	  OR_SVID_TRUST_DOMAIN },
	{ "our trust domain as a prefix",
	  { .san = "URI:spiffe://cluster.local.evil/ns/default/sa/web" }, OR_SVID_TRUST_DOMAIN },
	{ "leaf with CA=true", { .bc = "critical,CA:TRUE" }, OR_SVID_IS_CA },
	{ "expired", { .validity = VALID_EXPIRED }, OR_SVID_EXPIRED },
	{ "not yet valid", { .validity = VALID_FUTURE }, OR_SVID_NOT_YET_VALID },
	{ "keyEncipherment only", { .ku = "critical,keyEncipherment" }, OR_SVID_KEY_USAGE },
	{ "keyCertSign on the leaf", { .ku = "critical,digitalSignature,keyCertSign" },
	  OR_SVID_KEY_USAGE },
	{ "cRLSign on the leaf", { .ku = "critical,digitalSignature,cRLSign" },
	  OR_SVID_KEY_USAGE },
	{ "no keyUsage", { .ku = "" }, OR_SVID_KEY_USAGE },
	{ "another CA's leaf", { .signer = BY_OTHER_CA }, OR_SVID_CHAIN },
	{ "another CA's expired leaf", { .signer = BY_OTHER_CA, .validity = VALID_EXPIRED },
	  OR_SVID_CHAIN },
	{ "self-signed leaf", { .signer = SELF_SIGNED }, OR_SVID_CHAIN },
};

static void free_params(struct criterion_test_params *p)
{
	cr_free(p->params);
}

/*
 * Criterion may run each case in a fresh process image, where pointers into
 * the parent's data mean nothing: the parameter is an index into vcases.
 */
ParameterizedTestParameters(verify, table)
{
	size_t n = sizeof(vcases) / sizeof(vcases[0]);
	int *idx = cr_malloc(n * sizeof(*idx));

	for (size_t i = 0; i < n; i++)
		idx[i] = i;
	return cr_make_param_array(int, idx, n, free_params);
}

ParameterizedTest(int *i, verify, table, .init = setup, .fini = teardown)
{
	char id[OR_SPIFFE_ID_MAX] = "x", dir[PATH_MAX], err[256] = "";
	const struct vcase *c = &vcases[*i];
	struct or_ca *other = NULL;
	enum or_svid_err e;
	X509 *leaf;

	if (c->k.signer == BY_OTHER_CA) {
		tpath(dir, "other");
		cr_assert_eq(or_ca_load(NULL, NULL, dir, TD, &other, err, sizeof(err)), 0, "%s",
			     err);
		leaf = mint_cert(&c->k, other->cert, other->key, NULL);
	} else if (c->k.signer == SELF_SIGNED) {
		leaf = mint_cert(&c->k, NULL, NULL, NULL);
	} else {
		leaf = mint_cert(&c->k, ca->cert, ca->key, NULL);
	}
	e = or_svid_verify(ca->bundle, leaf, NULL, TD, now, id, sizeof(id));
	cr_expect_eq(e, c->want, "%s: got %s, want %s", c->name, or_svid_err_name(e),
		     or_svid_err_name(c->want));
	if (c->want == OR_SVID_OK)
		cr_expect_str_eq(id, GOOD_ID, "%s", c->name);
	else
		cr_expect_str_eq(id, "", "%s: no ID on failure", c->name);
	X509_free(leaf);
	or_ca_free(other);
}

Test(verify, reason_names)
{
	static const char *const want[] = {
		"ok",		"no_cert", "chain",   "uri_count",     "not_spiffe",
		"trust_domain", "is_ca",   "expired", "not_yet_valid", "key_usage",
	};

	cr_assert_eq(sizeof(want) / sizeof(want[0]), OR_SVID_ERR_MAX);
	for (int i = 0; i < OR_SVID_ERR_MAX; i++)
		cr_expect_str_eq(or_svid_err_name(i), want[i], "reason %d", i);
	cr_expect_str_eq(or_svid_err_name(OR_SVID_ERR_MAX), "unknown");
	cr_expect_str_eq(or_svid_err_name((enum or_svid_err)-1), "unknown");
}

/* ---- SPIFFE IDs ---- */

Test(spiffe, parse_good)
{
	static const char *const good[][4] = {
		{ GOOD_ID, "cluster.local", "default", "web" },
		{ "spiffe://td/ns/a/sa/b", "td", "a", "b" },
		{ "spiffe://a-b_c.9/ns/Kube-System/sa/x.y_z-1", "a-b_c.9", "Kube-System", "x.y_z-1" },
		{ "spiffe://cluster.local/ns/sa/sa/ns", "cluster.local", "sa", "ns" },
		{ "spiffe://cluster.local/ns/.../sa/..a", "cluster.local", "...", "..a" },
	};
	char td[64], ns[64], sa[64];

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		int ret = or_spiffe_parse(good[i][0], td, sizeof(td), ns, sizeof(ns), sa,
					  sizeof(sa));

		cr_expect_eq(ret, 0, "%s: %d", good[i][0], ret);
		if (ret)
			continue;
		cr_expect_str_eq(td, good[i][1], "%s: td", good[i][0]);
		cr_expect_str_eq(ns, good[i][2], "%s: ns", good[i][0]);
		cr_expect_str_eq(sa, good[i][3], "%s: sa", good[i][0]);
	}
	cr_expect_eq(or_spiffe_parse(GOOD_ID, NULL, 0, NULL, 0, NULL, 0), 0, "check only");
}

Test(spiffe, parse_bad)
{
	static const char *const bad[] = {
		"",
		"spiffe://",
		"spiffe:/cluster.local/ns/a/sa/b",
		"SPIFFE://cluster.local/ns/a/sa/b",
		"https://cluster.local/ns/a/sa/b",
		" spiffe://cluster.local/ns/a/sa/b",
		"spiffe:///ns/a/sa/b",
		"spiffe://Cluster.local/ns/a/sa/b",
		"spiffe://cluster.local:8443/ns/a/sa/b",
		"spiffe://user@cluster.local/ns/a/sa/b",
		"spiffe://user:pw@cluster.local/ns/a/sa/b",
		"spiffe://cluster%2elocal/ns/a/sa/b",
		"spiffe://cluster.local",
		"spiffe://cluster.local/",
		"spiffe://cluster.local/ns/a/sa/b/",
		"spiffe://cluster.local/ns/a/sa/b?x=1",
		"spiffe://cluster.local/ns/a/sa/b#frag",
		"spiffe://cluster.local/ns/a%20b/sa/b",
		"spiffe://cluster.local/ns//sa/b",
		"spiffe://cluster.local/ns/./sa/b",
		"spiffe://cluster.local/ns/../sa/b",
		"spiffe://cluster.local/ns/a/sa/..",
		"spiffe://cluster.local//ns/a/sa/b",
		"spiffe://cluster.local/ns/a/sa",
		"spiffe://cluster.local/ns/a/sa/b/c",
		"spiffe://cluster.local/sa/b/ns/a",
		"spiffe://cluster.local/NS/a/SA/b",
		"spiffe://cluster.local/ns/a b/sa/b",
		"spiffe://cluster.local/ns/a/sa/b\n",
		"spiffe://cluster.local/ns/é/sa/b",
		"spiffe://cluster.local/web",
	};
	char td[64], ns[64], sa[64];
	char longtd[300];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_expect_eq(or_spiffe_parse(bad[i], td, sizeof(td), ns, sizeof(ns), sa,
					     sizeof(sa)),
			     -EINVAL, "\"%s\" accepted", bad[i]);
	cr_expect_eq(or_spiffe_parse(NULL, td, sizeof(td), ns, sizeof(ns), sa, sizeof(sa)),
		     -EINVAL);

	/* Longer than a trust domain may be (255). */
	snprintf(longtd, sizeof(longtd), "spiffe://%0256d/ns/a/sa/b", 0);
	cr_expect_eq(or_spiffe_parse(longtd, NULL, 0, NULL, 0, NULL, 0), -EINVAL);
	/* Valid, but the caller's buffer is too small. */
	cr_expect_eq(or_spiffe_parse(GOOD_ID, td, 5, ns, sizeof(ns), sa, sizeof(sa)), -EINVAL);
	cr_expect_eq(or_spiffe_parse(GOOD_ID, td, sizeof(td), ns, sizeof(ns), sa, 3), -EINVAL);
	cr_expect_eq(or_spiffe_parse(GOOD_ID, td, sizeof(td), ns, sizeof(ns), sa, 4), 0);
}

Test(spiffe, id_format)
{
	char buf[OR_SPIFFE_ID_MAX], exact[sizeof(GOOD_ID)];

	cr_expect_eq(or_spiffe_id(TD, "default", "web", buf, sizeof(buf)), 0);
	cr_expect_str_eq(buf, GOOD_ID);
	cr_expect_eq(or_spiffe_id(TD, "default", "web", exact, sizeof(exact)), 0, "exact fit");
	cr_expect_str_eq(exact, GOOD_ID);
	cr_expect_eq(or_spiffe_id(TD, "default", "web", exact, sizeof(exact) - 1), -ENAMETOOLONG);
	cr_expect_str_eq(exact, "", "no truncated ID");
}
