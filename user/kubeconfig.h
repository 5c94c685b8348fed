/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Where the Kubernetes API is and how to prove who we are to it: from a
 * kubeconfig file (the subset kubectl users write by hand: server, CA,
 * bearer token or client certificate) or from the pod's in-cluster service
 * account. Exec and auth-provider plugins are refused with a clear error.
 */
#ifndef OR_KUBECONFIG_H
#define OR_KUBECONFIG_H

#include <stdbool.h>
#include <stddef.h>

#define OR_KUBE_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

struct or_kube_creds {
	char *server;      /* "https://host:port" without a trailing '/' */
	char *ca_file;     /* certificate-authority, absolute, or NULL */
	char *ca_pem;      /* certificate-authority-data, decoded, or NULL */
	size_t ca_pem_len;
	char *token;       /* a fixed bearer token, or NULL */
	char *token_file;  /* read again for every request (bound tokens rotate), or NULL */
	char *cert_file;   /* client-certificate, absolute, or NULL */
	char *key_file;    /* client-key, absolute, or NULL */
	char *cert_pem;    /* client-certificate-data, decoded, or NULL */
	size_t cert_pem_len;
	char *key_pem;     /* client-key-data, decoded, or NULL */
	size_t key_pem_len;
	bool insecure;     /* insecure-skip-tls-verify: true */
	char *source;      /* for messages: the kubeconfig path and context, or "in-cluster" */
};

/*
 * Reads a kubeconfig: `context` (or current-context when NULL) -> its
 * cluster and user. Relative file paths are taken from the kubeconfig's
 * directory, as kubectl does. Returns 0 with *out filled (free with
 * or_kube_creds_free), or -errno with "FILE: reason" in err.
 */
int or_kubeconfig_load(const char *path, const char *context, struct or_kube_creds *out,
		       char *err, size_t errlen);

/*
 * In-cluster: KUBERNETES_SERVICE_HOST / KUBERNETES_SERVICE_PORT (an IPv6
 * host gets brackets), sa_dir/token as token_file and sa_dir/ca.crt as
 * ca_file (sa_dir NULL: OR_KUBE_SA_DIR). 0 or -errno with a reason in err.
 */
int or_kube_in_cluster(const char *sa_dir, struct or_kube_creds *out, char *err, size_t errlen);

void or_kube_creds_free(struct or_kube_creds *c);

/*
 * The bearer token to send now: token, or token_file's contents with
 * surrounding whitespace removed (malloc'd into *out; NULL when the creds
 * carry none). 0 or -errno.
 */
int or_kube_creds_token(const struct or_kube_creds *c, char **out);

#endif
