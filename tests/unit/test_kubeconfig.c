// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * kubeconfig and in-cluster credentials. Each test writes its files into its
 * own mkdtemp directory, which teardown removes. Criterion runs every test in
 * a process of its own, so setenv, unsetenv and chdir do not leak between tests.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kubeconfig.h"

static char tmpdir[PATH_MAX];
static char kc_path[PATH_MAX]; /* tmpdir/kubeconfig */
static struct or_kube_creds creds;
static char err[512];

static void tpath(char *buf, const char *name)
{
	snprintf(buf, PATH_MAX, "%s/%s", tmpdir, name);
}

static void write_file(const char *name, const char *text)
{
	char path[PATH_MAX], dir[PATH_MAX], *slash;
	FILE *f;

	tpath(path, name);
	strcpy(dir, path);
	slash = strrchr(dir, '/');
	*slash = '\0';
	mkdir(dir, 0700); /* one level of subdirectory is all the tests need */
	f = fopen(path, "w");
	cr_assert_not_null(f, "fopen %s: %s", path, strerror(errno));
	cr_assert_eq(fputs(text, f) >= 0, 1, "write %s", path);
	cr_assert_eq(fclose(f), 0, "close %s", path);
}

static int load(const char *text, const char *context)
{
	write_file("kubeconfig", text);
	return or_kubeconfig_load(kc_path, context, &creds, err, sizeof(err));
}

static void assert_zeroed(const struct or_kube_creds *c)
{
	static const struct or_kube_creds zero;

	cr_assert_eq(memcmp(c, &zero, sizeof(zero)), 0, "creds not zeroed after a failure");
}

/* Loads `text` and expects `want` with `frag` in the message and nothing in creds. */
static void expect_fail(const char *text, const char *context, int want, const char *frag)
{
	int ret = load(text, context);

	cr_assert_eq(ret, want, "want %d (%s), got %d: %s", want, strerror(-want), ret, err);
	cr_assert_not_null(strstr(err, frag), "message \"%s\" lacks \"%s\"", err, frag);
	assert_zeroed(&creds);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

static void setup(void)
{
	char made[] = "/tmp/or_kubeconfig.XXXXXX";

	cr_assert_not_null(mkdtemp(made), "mkdtemp: %s", strerror(errno));
	/* Resolved, so paths built from getcwd() compare equal even if /tmp is a symlink. */
	cr_assert_not_null(realpath(made, tmpdir), "realpath %s: %s", made, strerror(errno));
	tpath(kc_path, "kubeconfig");
	memset(&creds, 0, sizeof(creds));
	err[0] = '\0';
}

static void teardown(void)
{
	or_kube_creds_free(&creds);
	if (tmpdir[0])
		nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(kubeconfig, .init = setup, .fini = teardown);

/* One context "dev", pointing at cluster "c" and user "u"; the user body is %s. */
#define KC_HEAD                                         \
	"apiVersion: v1\n"                              \
	"kind: Config\n"                                \
	"current-context: dev\n"                        \
	"contexts:\n"                                   \
	"- name: dev\n"                                 \
	"  context: {cluster: c, user: u}\n"            \
	"clusters:\n"                                   \
	"- name: c\n"                                   \
	"  cluster:\n"                                  \
	"    server: https://api.example:6443\n"

static char *with_user(const char *user_body)
{
	static char buf[4096];

	snprintf(buf, sizeof(buf), KC_HEAD "users:\n- name: u\n  user:\n%s", user_body);
	return buf;
}

/* ---- paths, tokens, source ---- */

Test(kubeconfig, token_and_relative_ca)
{
	char want[PATH_MAX + 32];
	int ret;

	write_file("sub/kubeconfig",
		   "current-context: dev\n"
		   "contexts: [{name: dev, context: {cluster: c, user: u, namespace: web}}]\n"
		   "clusters:\n"
		   "- name: c\n"
		   "  cluster:\n"
		   "    server: https://10.0.0.1:6443/\n"
		   "    certificate-authority: certs/ca.crt\n"
		   "users:\n"
		   "- name: u\n"
		   "  user:\n"
		   "    token: abc.def\n"
		   "    tokenFile: ./tok\n");
	tpath(kc_path, "sub/kubeconfig");
	ret = or_kubeconfig_load(kc_path, NULL, &creds, err, sizeof(err));
	cr_assert_eq(ret, 0, "load: %d %s", ret, err);
	cr_assert_str_eq(creds.server, "https://10.0.0.1:6443");
	snprintf(want, sizeof(want), "%s/sub/certs/ca.crt", tmpdir);
	cr_assert_str_eq(creds.ca_file, want);
	snprintf(want, sizeof(want), "%s/sub/tok", tmpdir);
	cr_assert_str_eq(creds.token_file, want);
	cr_assert_str_eq(creds.token, "abc.def");
	cr_assert_null(creds.ca_pem);
	cr_assert_null(creds.cert_file);
	cr_assert_null(creds.key_file);
	cr_assert_eq(creds.insecure, false);
	snprintf(want, sizeof(want), "%s (context dev)", kc_path);
	cr_assert_str_eq(creds.source, want);
}

Test(kubeconfig, relative_kubeconfig_path_gives_absolute_files)
{
	char want[PATH_MAX + 32];
	int ret;

	write_file("sub/kubeconfig", with_user("    client-certificate: u.crt\n"
					       "    client-key: /etc/keys/u.key\n"));
	cr_assert_eq(chdir(tmpdir), 0, "chdir: %s", strerror(errno));
	ret = or_kubeconfig_load("./sub/kubeconfig", NULL, &creds, err, sizeof(err));
	cr_assert_eq(ret, 0, "load: %d %s", ret, err);
	snprintf(want, sizeof(want), "%s/sub/u.crt", tmpdir);
	cr_assert_str_eq(creds.cert_file, want);
	cr_assert_str_eq(creds.key_file, "/etc/keys/u.key", "absolute paths are kept as they are");
	cr_assert_str_eq(creds.source, "./sub/kubeconfig (context dev)");
}

Test(kubeconfig, anonymous_user_and_unknown_keys)
{
	int ret;

	ret = load("preferences: {colors: true}\n"
		   "extensions: [{name: x, extension: {a: 1}}]\n" KC_HEAD
		   "    proxy-url: http://proxy:3128\n"
		   "    extensions: [{name: y, extension: {}}]\n"
		   "users:\n"
		   "- name: u\n"
		   "  user: {}\n",
		   NULL);
	cr_assert_eq(ret, 0, "load: %d %s", ret, err);
	cr_assert_str_eq(creds.server, "https://api.example:6443");
	cr_assert_null(creds.token);
	cr_assert_null(creds.token_file);
}

Test(kubeconfig, null_fields_are_unset)
{
	int ret;

	ret = load(with_user("    token: \"\"\n"
			     "    exec: null\n"
			     "    auth-provider: ~\n"
			     "    username:\n"),
		   NULL);
	cr_assert_eq(ret, 0, "load: %d %s", ret, err);
	cr_assert_null(creds.token);
}

/* ---- *-data ---- */

Test(kubeconfig, data_two_padding_chars)
{
	int ret;

	/* "A" -> QQ== : one byte, where EVP_DecodeBlock alone reports three. */
	ret = load(with_user("    client-certificate-data: QQ==\n"
			     "    client-key-data: QUI=\n"),
		   NULL);
	cr_assert_eq(ret, 0, "load: %d %s", ret, err);
	cr_assert_eq(creds.cert_pem_len, 1);
	cr_assert_eq(memcmp(creds.cert_pem, "A", 2), 0, "decoded \"A\" and a NUL");
	cr_assert_eq(creds.key_pem_len, 2);
	cr_assert_eq(memcmp(creds.key_pem, "AB", 3), 0, "decoded \"AB\" and a NUL");
	cr_assert_null(creds.cert_file);
	cr_assert_null(creds.key_file);
}

Test(kubeconfig, data_exact_binary_bytes)
{
	static const char want[] = { 0x00, (char)0xff, 0x10, (char)0x80 };
	char text[2048];
	int ret;

	snprintf(text, sizeof(text),
		 KC_HEAD "    certificate-authority-data: QUJD\n"
			 "    certificate-authority: ignored.crt\n"
			 "users:\n- name: u\n  user:\n"
			 "    client-certificate-data: AP8QgA==\n"
			 "    client-certificate: ignored.crt\n"
			 "    client-key: u.key\n");
	ret = load(text, NULL);
	cr_assert_eq(ret, 0, "load: %d %s", ret, err);
	cr_assert_eq(creds.ca_pem_len, 3);
	cr_assert_str_eq(creds.ca_pem, "ABC");
	cr_assert_null(creds.ca_file, "certificate-authority-data overrides the file");
	cr_assert_eq(creds.cert_pem_len, sizeof(want));
	cr_assert_eq(memcmp(creds.cert_pem, want, sizeof(want)), 0);
	cr_assert_null(creds.cert_file, "client-certificate-data overrides the file");
	cr_assert_not_null(creds.key_file, "key file with certificate data is a valid pair");
}

Test(kubeconfig, data_across_lines)
{
	int ret;

	/* "hello world!" split by a block scalar's line breaks. */
	ret = load(with_user("    client-certificate-data: |\n"
			     "      aGVsbG8g\n"
			     "      d29ybGQh\n"
			     "    client-key-data: QQ==\n"),
		   NULL);
	cr_assert_eq(ret, 0, "load: %d %s", ret, err);
	cr_assert_eq(creds.cert_pem_len, 12);
	cr_assert_str_eq(creds.cert_pem, "hello world!");
}

Test(kubeconfig, data_bad_base64)
{
	char frag[PATH_MAX + 16];

	snprintf(frag, sizeof(frag), "%s:15: user \"u\": client-key-data is not valid base64",
		 kc_path);
	/* Padding in the middle, which EVP_DecodeBlock alone would accept. */
	expect_fail(with_user("    client-certificate-data: QQ==\n"
			      "    client-key-data: QQ=A\n"),
		    NULL, -EINVAL, frag);
	expect_fail(with_user("    client-certificate-data: QQ\n"
			      "    client-key-data: QQ==\n"),
		    NULL, -EINVAL, "client-certificate-data is not valid base64");
	expect_fail(with_user("    client-certificate-data: Q!==\n"
			      "    client-key-data: QQ==\n"),
		    NULL, -EINVAL, "client-certificate-data is not valid base64");
}

/* ---- contexts ---- */

#define KC_TWO                                                  \
	"current-context: one\n"                                \
	"contexts:\n"                                           \
	"- {name: one, context: {cluster: c1, user: u}}\n"      \
	"- {name: two, context: {cluster: c2, user: u}}\n"      \
	"clusters:\n"                                           \
	"- {name: c1, cluster: {server: 'https://one:443'}}\n"  \
	"- {name: c2, cluster: {server: 'https://two:443'}}\n"  \
	"users:\n"                                              \
	"- {name: u, user: {token: t}}\n"

Test(kubeconfig, current_context_is_the_default)
{
	char want[PATH_MAX + 32];
	int ret;

	ret = load(KC_TWO, NULL);
	cr_assert_eq(ret, 0, "load: %d %s", ret, err);
	cr_assert_str_eq(creds.server, "https://one:443");
	or_kube_creds_free(&creds);
	ret = or_kubeconfig_load(kc_path, "", &creds, err, sizeof(err));
	cr_assert_eq(ret, 0, "load with \"\": %d %s", ret, err);
	cr_assert_str_eq(creds.server, "https://one:443", "an empty context means current-context");
	snprintf(want, sizeof(want), "%s (context one)", kc_path);
	cr_assert_str_eq(creds.source, want);
}

Test(kubeconfig, explicit_context_wins)
{
	char want[PATH_MAX + 32];
	int ret;

	ret = load(KC_TWO, "two");
	cr_assert_eq(ret, 0, "load: %d %s", ret, err);
	cr_assert_str_eq(creds.server, "https://two:443");
	snprintf(want, sizeof(want), "%s (context two)", kc_path);
	cr_assert_str_eq(creds.source, want);
}

Test(kubeconfig, missing_context)
{
	char want[PATH_MAX + 64];
	int ret;

	ret = load(KC_TWO, "foo");
	snprintf(want, sizeof(want), "%s: context \"foo\" not found", kc_path);
	cr_assert_eq(ret, -EINVAL, "got %d: %s", ret, err);
	cr_assert_str_eq(err, want);
	assert_zeroed(&creds);
}

Test(kubeconfig, no_current_context)
{
	expect_fail("contexts: []\n", NULL, -EINVAL,
		    "no context given and current-context is not set");
	expect_fail("", NULL, -EINVAL, "no context given and current-context is not set");
	expect_fail("", "dev", -EINVAL, "context \"dev\" not found");
}

Test(kubeconfig, missing_cluster)
{
	char want[PATH_MAX + 64];
	int ret;

	ret = load("current-context: x\n"
		   "contexts: [{name: x, context: {cluster: gone, user: u}}]\n"
		   "users: [{name: u, user: {token: t}}]\n",
		   NULL);
	snprintf(want, sizeof(want), "%s: cluster \"gone\" not found (context \"x\")", kc_path);
	cr_assert_eq(ret, -EINVAL, "got %d: %s", ret, err);
	cr_assert_str_eq(err, want);
	assert_zeroed(&creds);
}

Test(kubeconfig, missing_user)
{
	char want[PATH_MAX + 64];
	int ret;

	ret = load("current-context: x\n"
		   "contexts: [{name: x, context: {cluster: c, user: nobody}}]\n"
		   "clusters: [{name: c, cluster: {server: 'https://c'}}]\n"
		   "users: [{name: u, user: {token: t}}]\n",
		   NULL);
	snprintf(want, sizeof(want), "%s: user \"nobody\" not found (context \"x\")", kc_path);
	cr_assert_eq(ret, -EINVAL, "got %d: %s", ret, err);
	cr_assert_str_eq(err, want);
	assert_zeroed(&creds);
	expect_fail("current-context: x\ncontexts: [{name: x, context: {cluster: c}}]\n", NULL,
		    -EINVAL, "context \"x\" names no user");
}

Test(kubeconfig, duplicate_name)
{
	expect_fail(KC_TWO "- {name: u, user: {token: t2}}\n", NULL, -EINVAL,
		    ":10: user \"u\" is defined twice");
}

/* ---- server ---- */

Test(kubeconfig, http_refused)
{
	expect_fail("current-context: x\n"
		    "contexts: [{name: x, context: {cluster: c, user: u}}]\n"
		    "clusters: [{name: c, cluster: {server: 'http://api:8080'}}]\n"
		    "users: [{name: u, user: {token: t}}]\n",
		    NULL, -EINVAL, "server http://api:8080 is plain http; outrider only talks TLS");
}

Test(kubeconfig, server_checks)
{
	int ret;

	expect_fail("current-context: x\n"
		    "contexts: [{name: x, context: {cluster: c, user: u}}]\n"
		    "clusters: [{name: c, cluster: {server: 'api:6443'}}]\n"
		    "users: [{name: u, user: {}}]\n",
		    NULL, -EINVAL, "server api:6443 must start with https://");
	expect_fail("current-context: x\n"
		    "contexts: [{name: x, context: {cluster: c, user: u}}]\n"
		    "clusters: [{name: c, cluster: {insecure-skip-tls-verify: true}}]\n"
		    "users: [{name: u, user: {}}]\n",
		    NULL, -EINVAL, "cluster \"c\" has no server");
	/* Exactly one trailing '/' goes. */
	ret = load("current-context: x\n"
		   "contexts: [{name: x, context: {cluster: c, user: u}}]\n"
		   "clusters: [{name: c, cluster: {server: 'https://api/prefix//'}}]\n"
		   "users: [{name: u, user: {}}]\n",
		   NULL);
	cr_assert_eq(ret, 0, "load: %d %s", ret, err);
	cr_assert_str_eq(creds.server, "https://api/prefix/");
}

/* ---- users ---- */

Test(kubeconfig, exec_refused)
{
	char frag[PATH_MAX + 64];

	snprintf(frag, sizeof(frag), "%s:14: user \"u\": exec credential plugins are not supported",
		 kc_path);
	expect_fail(with_user("    exec:\n"
			      "      apiVersion: client.authentication.k8s.io/v1\n"
			      "      command: aws\n"),
		    NULL, -ENOTSUP, frag);
	cr_assert_not_null(strstr(err, "use a token"), "%s", err);
}

Test(kubeconfig, auth_provider_refused)
{
	expect_fail(with_user("    auth-provider:\n"
			      "      name: oidc\n"
			      "      config: {idp-issuer-url: 'https://idp'}\n"),
		    NULL, -ENOTSUP, "auth-provider plugins are not supported");
	cr_assert_not_null(strstr(err, "client certificate"), "%s", err);
}

Test(kubeconfig, basic_auth_refused)
{
	expect_fail(with_user("    username: admin\n    password: hunter2\n"), NULL, -ENOTSUP,
		    "basic auth (username/password) is not supported");
	expect_fail(with_user("    password: hunter2\n"), NULL, -ENOTSUP, "basic auth");
}

Test(kubeconfig, cert_without_key)
{
	expect_fail(with_user("    client-certificate: u.crt\n"), NULL, -EINVAL,
		    "user \"u\": client-certificate without client-key");
	expect_fail(with_user("    client-certificate-data: QQ==\n"), NULL, -EINVAL,
		    "client-certificate without client-key");
	expect_fail(with_user("    client-key-data: QQ==\n"), NULL, -EINVAL,
		    "client-key without client-certificate");
	expect_fail(with_user("    token: t\n    client-key: u.key\n"), NULL, -EINVAL,
		    "client-key without client-certificate");
}

Test(kubeconfig, field_of_wrong_type)
{
	expect_fail(with_user("    token: [a, b]\n"), NULL, -EINVAL,
		    ":14: user \"u\": token must be a string, not a list");
	expect_fail(with_user("    token: \"a\\nb\"\n"), NULL, -EINVAL,
		    "token contains a control character");
}

static int load_insecure(const char *value)
{
	char text[1024];

	snprintf(text, sizeof(text),
		 KC_HEAD "    insecure-skip-tls-verify: %s\nusers: [{name: u, user: {}}]\n", value);
	return load(text, NULL);
}

Test(kubeconfig, insecure_flag)
{
	int ret;

	ret = load_insecure("true");
	cr_assert_eq(ret, 0, "load: %d %s", ret, err);
	cr_assert_eq(creds.insecure, true);
	or_kube_creds_free(&creds);

	ret = load_insecure("false");
	cr_assert_eq(ret, 0, "load: %d %s", ret, err);
	cr_assert_eq(creds.insecure, false);
	or_kube_creds_free(&creds);

	ret = load_insecure("sometimes");
	cr_assert_eq(ret, -EINVAL, "got %d: %s", ret, err);
	cr_assert_not_null(strstr(err, ":11: cluster \"c\": insecure-skip-tls-verify must be "
				       "true or false"),
			   "%s", err);
	assert_zeroed(&creds);
	ret = load_insecure("\"true\"");
	cr_assert_eq(ret, -EINVAL, "a quoted \"true\" is a string, as for kubectl: %d", ret);
}

/* ---- the file itself ---- */

Test(kubeconfig, malformed_yaml_gives_line)
{
	char frag[PATH_MAX + 128];

	snprintf(frag, sizeof(frag),
		 "%s:5: did not find expected ',' or '}' (while parsing a flow mapping at line 4)",
		 kc_path);
	expect_fail("current-context: dev\n"
		    "contexts:\n"
		    "- name: dev\n"
		    "  context: {cluster: c, user: u\n"
		    "clusters: []\n",
		    NULL, -EINVAL, frag);
	cr_assert_str_eq(err, frag);

	snprintf(frag, sizeof(frag), "%s:3: did not find expected key", kc_path);
	expect_fail("current-context: dev\n"
		    "contexts: []\n"
		    "  bad: indent\n",
		    NULL, -EINVAL, frag);

	/* A reader error has only a byte offset; the line is counted from it. */
	snprintf(frag, sizeof(frag), "%s:3: invalid leading UTF-8 octet", kc_path);
	expect_fail("a: 1\nb: 2\nc: \xff\n", NULL, -EINVAL, frag);
}

Test(kubeconfig, top_level_not_a_mapping)
{
	expect_fail("- a\n- b\n", NULL, -EINVAL, ":1: expected a mapping at the top level");
	expect_fail("current-context: x\ncontexts: {x: y}\n", NULL, -EINVAL,
		    ":2: contexts must be a list, not a mapping");
}

Test(kubeconfig, unreadable_file)
{
	char path[PATH_MAX], want[PATH_MAX + 64];
	int ret;

	tpath(path, "absent");
	ret = or_kubeconfig_load(path, NULL, &creds, err, sizeof(err));
	cr_assert_eq(ret, -ENOENT, "got %d: %s", ret, err);
	snprintf(want, sizeof(want), "%s: %s", path, strerror(ENOENT));
	cr_assert_str_eq(err, want);
	assert_zeroed(&creds);

	ret = or_kubeconfig_load(tmpdir, NULL, &creds, err, sizeof(err));
	cr_assert_eq(ret, -EISDIR, "a directory: got %d: %s", ret, err);
	assert_zeroed(&creds);
}

/* ---- in-cluster ---- */

static void make_sa(void)
{
	write_file("sa/token", "sa-token\n");
	write_file("sa/ca.crt", "-----BEGIN CERTIFICATE-----\n");
}

Test(kubeconfig, in_cluster)
{
	char dir[PATH_MAX], want[PATH_MAX + 16];
	char *tok = NULL;
	int ret;

	make_sa();
	tpath(dir, "sa");
	setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
	setenv("KUBERNETES_SERVICE_PORT", "443", 1);
	ret = or_kube_in_cluster(dir, &creds, err, sizeof(err));
	cr_assert_eq(ret, 0, "in-cluster: %d %s", ret, err);
	cr_assert_str_eq(creds.server, "https://10.96.0.1:443");
	snprintf(want, sizeof(want), "%s/token", dir);
	cr_assert_str_eq(creds.token_file, want);
	snprintf(want, sizeof(want), "%s/ca.crt", dir);
	cr_assert_str_eq(creds.ca_file, want);
	cr_assert_str_eq(creds.source, "in-cluster");
	cr_assert_null(creds.token);
	ret = or_kube_creds_token(&creds, &tok);
	cr_assert_eq(ret, 0, "token: %d", ret);
	cr_assert_str_eq(tok, "sa-token");
	free(tok);
}

Test(kubeconfig, in_cluster_ipv6)
{
	char dir[PATH_MAX];
	int ret;

	make_sa();
	tpath(dir, "sa/");
	setenv("KUBERNETES_SERVICE_HOST", "fd00:10:96::1", 1);
	setenv("KUBERNETES_SERVICE_PORT", "6443", 1);
	ret = or_kube_in_cluster(dir, &creds, err, sizeof(err));
	cr_assert_eq(ret, 0, "in-cluster: %d %s", ret, err);
	cr_assert_str_eq(creds.server, "https://[fd00:10:96::1]:6443");
	cr_assert_null(strstr(creds.token_file, "//"), "%s", creds.token_file);
}

Test(kubeconfig, in_cluster_missing_env)
{
	char dir[PATH_MAX];
	int ret;

	make_sa();
	tpath(dir, "sa");
	unsetenv("KUBERNETES_SERVICE_HOST");
	setenv("KUBERNETES_SERVICE_PORT", "443", 1);
	ret = or_kube_in_cluster(dir, &creds, err, sizeof(err));
	cr_assert_eq(ret, -ENOENT, "got %d: %s", ret, err);
	cr_assert_str_eq(err, "not running in a pod: KUBERNETES_SERVICE_HOST is not set");
	assert_zeroed(&creds);

	setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
	unsetenv("KUBERNETES_SERVICE_PORT");
	ret = or_kube_in_cluster(dir, &creds, err, sizeof(err));
	cr_assert_eq(ret, -ENOENT, "got %d: %s", ret, err);
	cr_assert_str_eq(err, "not running in a pod: KUBERNETES_SERVICE_PORT is not set");

	setenv("KUBERNETES_SERVICE_PORT", "https", 1);
	ret = or_kube_in_cluster(dir, &creds, err, sizeof(err));
	cr_assert_eq(ret, -EINVAL, "a named port: got %d: %s", ret, err);
	assert_zeroed(&creds);
}

Test(kubeconfig, in_cluster_missing_files)
{
	char dir[PATH_MAX], path[PATH_MAX];
	int ret;

	tpath(dir, "sa");
	write_file("sa/ca.crt", "x");
	setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
	setenv("KUBERNETES_SERVICE_PORT", "443", 1);
	ret = or_kube_in_cluster(dir, &creds, err, sizeof(err));
	cr_assert_eq(ret, -ENOENT, "got %d: %s", ret, err);
	snprintf(path, sizeof(path), "%s/token", dir);
	cr_assert_not_null(strstr(err, path), "message \"%s\" names %s", err, path);
	assert_zeroed(&creds);

	write_file("sa/token", "t");
	tpath(path, "sa/ca.crt");
	cr_assert_eq(unlink(path), 0);
	ret = or_kube_in_cluster(dir, &creds, err, sizeof(err));
	cr_assert_eq(ret, -ENOENT, "got %d: %s", ret, err);
	cr_assert_not_null(strstr(err, path), "message \"%s\" names %s", err, path);
	assert_zeroed(&creds);
}

/* ---- or_kube_creds_token ---- */

Test(kubeconfig, token_fixed)
{
	struct or_kube_creds c = { .token = "fixed", .token_file = "/nonexistent" };
	char *tok = NULL;

	cr_assert_eq(or_kube_creds_token(&c, &tok), 0);
	cr_assert_str_eq(tok, "fixed", "token wins over token_file");
	cr_assert_neq(tok, c.token, "a copy, not the creds' own string");
	free(tok);
}

Test(kubeconfig, token_none)
{
	struct or_kube_creds c = { 0 };
	char *tok = (char *)"stale";

	cr_assert_eq(or_kube_creds_token(&c, &tok), 0);
	cr_assert_null(tok);
}

Test(kubeconfig, token_file_trimmed_and_rotated)
{
	char *tok = NULL;
	int ret;

	write_file("tok", "  \n\teyJhbGciOi.first\r\n\n");
	ret = load(with_user("    tokenFile: tok\n"), NULL);
	cr_assert_eq(ret, 0, "load: %d %s", ret, err);
	cr_assert_eq(or_kube_creds_token(&creds, &tok), 0);
	cr_assert_str_eq(tok, "eyJhbGciOi.first");
	free(tok);

	/* The kubelet rewrites a bound token before it expires: the next call sees it. */
	write_file("tok", "eyJhbGciOi.second");
	cr_assert_eq(or_kube_creds_token(&creds, &tok), 0);
	cr_assert_str_eq(tok, "eyJhbGciOi.second");
	free(tok);
}

Test(kubeconfig, token_file_bad)
{
	struct or_kube_creds c = { 0 };
	char path[PATH_MAX], *big, *tok = (char *)"stale";

	tpath(path, "tok");
	c.token_file = path;
	write_file("tok", " \n\t\n");
	cr_assert_eq(or_kube_creds_token(&c, &tok), -EINVAL, "whitespace only");
	cr_assert_null(tok);
	write_file("tok", "two\nlines\n");
	cr_assert_eq(or_kube_creds_token(&c, &tok), -EINVAL, "a line break inside");
	big = malloc((64 << 10) + 2);
	cr_assert_not_null(big);
	memset(big, 'a', (64 << 10) + 1);
	big[(64 << 10) + 1] = '\0';
	write_file("tok", big);
	cr_assert_eq(or_kube_creds_token(&c, &tok), -EFBIG, "over 64 KiB");
	big[64 << 10] = '\0';
	write_file("tok", big);
	cr_assert_eq(or_kube_creds_token(&c, &tok), 0, "exactly 64 KiB");
	cr_assert_eq(strlen(tok), 64u << 10);
	free(tok);
	free(big);
	tpath(path, "absent");
	cr_assert_eq(or_kube_creds_token(&c, &tok), -ENOENT);
	cr_assert_null(tok);
}

/* ---- free ---- */

Test(kubeconfig, free_twice)
{
	struct or_kube_creds zero = { 0 };
	int ret;

	or_kube_creds_free(&zero);
	or_kube_creds_free(NULL);
	ret = load(with_user("    token: t\n"
			     "    client-certificate-data: QQ==\n"
			     "    client-key-data: QUI=\n"),
		   NULL);
	cr_assert_eq(ret, 0, "load: %d %s", ret, err);
	or_kube_creds_free(&creds);
	assert_zeroed(&creds);
	or_kube_creds_free(&creds);
	assert_zeroed(&creds);
}
