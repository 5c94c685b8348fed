/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Enrolling a pod: in-pod listeners on 127.0.0.1:15001 and [::1]:15001
 * (created inside its netns), the capture programs on its cgroup, its
 * or_pods entry, and the workers watching its listeners. Unenrolling undoes
 * all of it; connections already proxied run to their end.
 */
#ifndef OR_ENROLL_H
#define OR_ENROLL_H

#include <stdbool.h>

#include "bpf_state.h"
#include "identity.h"
#include "config.h"
#include "pod.h"

#define OR_ENROLL_LSN 6

struct or_enrolled {
	char name[OR_NAME_LEN]; /* "namespace/name", cut to fit the maps */
	char *key;              /* "namespace/name" whole: what the agent matches on */
	char *netns_path;       /* as enrolled, to notice a changed config */
	char *cgroup_path;
	char *ns, *sa;          /* namespace and service account: the SVID's identity */
	struct or_ip ip, ip6;
	struct or_pod_rt *pod;
	struct or_listener *lsn[OR_ENROLL_LSN]; /* outbound v4, v6; tunnel v4, v6; sidecar
						  inbound v4, v6 (each may be NULL) */
	int cgroup_fd;
	struct or_pod_links links;
	struct or_enrolled *next;
};

/*
 * Enrolls pod: outbound listeners on `port`, tunnel listeners on its own
 * addresses :OR_PORT_TUNNEL, and an SVID minted from ca (valid ttl_s) for
 * its namespace and service account. On success *out is the new record.
 * In sidecar mode (or_proxy.sidecar) the agent is already in the pod's
 * netns: the same listeners plus inbound ones on *:OR_PORT_INBOUND, and no
 * programs, cgroup or or_pods entry. Returns 0 or -errno.
 */
int or_enroll(struct or_bpf *b, const struct or_pod_cfg *pod, uint16_t port,
	      const struct or_ca *ca, uint32_t ttl_s, struct or_enrolled **out);
/* Replaces the pod's SVID when it is half way through its life. 0 or -errno. */
int or_enrolled_renew(struct or_bpf *b, struct or_enrolled *e, const struct or_ca *ca,
		      uint32_t ttl_s, time_t now);
/* Releases the pod and frees e. */
void or_unenroll(struct or_bpf *b, struct or_enrolled *e);
/* true when pod still describes the pod e enrolled (same netns, cgroup, IPs). */
bool or_enrolled_same(const struct or_enrolled *e, const struct or_pod_cfg *pod);

#endif
