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
#include "handover.h"
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
	bool fail_open;           /* its namespace's on_agent_down, as written to or_pods */
	unsigned int n_inherited; /* listeners taken over from the previous agent */
	unsigned int n_adopted;   /* pinned links of a previous agent kept */
	struct or_pod_links links;
	struct or_enrolled *next;
};

struct or_enroll_opts {
	uint16_t port;           /* outbound listener port */
	const struct or_ca *ca;  /* signs the pod's SVID (NULL: none) */
	uint32_t ttl_s;          /* SVID lifetime */
	bool fail_open;          /* on_agent_down of the pod's namespace */
	struct or_ho_client *ho; /* listeners a previous agent handed over, or NULL */
};

/*
 * Enrolls pod: outbound listeners on o->port, tunnel listeners on its own
 * addresses :OR_PORT_TUNNEL (each taken from o->ho when the previous agent
 * handed it over), programs attached or a previous agent's pinned links
 * adopted, and an SVID for its namespace and service account. On success
 * *out is the new record. In sidecar mode (or_proxy.sidecar) the agent is
 * already in the pod's netns: the same listeners plus inbound ones on
 * *:OR_PORT_INBOUND, and no programs, cgroup or or_pods entry.
 * Returns 0 or -errno.
 */
int or_enroll(struct or_bpf *b, const struct or_pod_cfg *pod, const struct or_enroll_opts *o,
	      struct or_enrolled **out);
/* Rewrites the pod's or_pods entry when its on_agent_down changed. 0 or -errno. */
int or_enrolled_set_fail_open(struct or_bpf *b, struct or_enrolled *e, bool fail_open);
/*
 * The agent is going away but the pod stays captured: stops accepting on
 * its listeners and frees e, leaving links pinned and the or_pods entry.
 */
void or_enrolled_keep(struct or_enrolled *e);
/* Replaces the pod's SVID when it is half way through its life. 0 or -errno. */
int or_enrolled_renew(struct or_bpf *b, struct or_enrolled *e, const struct or_ca *ca,
		      uint32_t ttl_s, time_t now);
/* Releases the pod and frees e. */
void or_unenroll(struct or_bpf *b, struct or_enrolled *e);
/* true when pod still describes the pod e enrolled (same netns, cgroup, IPs). */
bool or_enrolled_same(const struct or_enrolled *e, const struct or_pod_cfg *pod);

#endif
