/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The kernel side as the agent holds it: the capture skeleton loaded with
 * its maps pinned under pin_dir, the per-pod cgroup links (pinned under
 * pin_dir/links/<namespace>_<name>/), and the writes that keep the maps in
 * step with the routing table.
 */
#ifndef OR_BPF_STATE_H
#define OR_BPF_STATE_H

#include <stdbool.h>
#include <stdint.h>
#include <limits.h>

#include "or_abi.h"
#include "routes.h"

struct capture_bpf;
struct bpf_link;

enum or_pod_prog {
	OR_PROG_CONNECT4,
	OR_PROG_CONNECT6,
	OR_PROG_GETPEERNAME4,
	OR_PROG_GETPEERNAME6,
	OR_PROG_SOCKOPS,
	OR_PROG_SK_LOOKUP, /* on the pod's netns, not its cgroup */
	OR_PROG_MAX,
};

struct or_bpf {
	struct capture_bpf *skel;
	char pin_dir[PATH_MAX];
	int origdst_fd;  /* or_origdst, read by workers on accept */
	int breakers_fd; /* or_breakers, written on endpoint state changes */
	int stats_fd;    /* or_stats, read for /metrics */
};

struct or_pod_links {
	struct bpf_link *link[OR_PROG_MAX];
	bool adopted[OR_PROG_MAX]; /* a previous agent's, kept */
	char pin_dir[PATH_MAX]; /* pin_dir/links/<namespace>_<name> */
};

/*
 * Loads the programs with their maps pinned under pin_dir (created, and
 * bpffs mounted at /sys/fs/bpf if nothing is). Maps a previous agent pinned
 * are reused; one of another layout is replaced, its entries carried over
 * when the layout only grew (logged either way). Link pins of a previous
 * agent stay until or_bpf_attach adopts them or or_bpf_sweep removes them.
 * Returns 0 or -errno.
 */
int or_bpf_open(struct or_bpf *b, const char *pin_dir, uint16_t outbound_port);
/* Lets go of the programs and maps; the pins stay (outriderctl uninstall removes them). */
void or_bpf_close(struct or_bpf *b);

/*
 * Attaches the capture programs to the pod's cgroup and sk_lookup to its
 * netns, links pinned under pin_dir/links/<pod_name>. A link a previous
 * agent pinned there for the same cgroup or netns is adopted instead: our
 * program replaces its program in place (no moment without capture, no
 * second attachment). Returns how many links were adopted, or -errno.
 */
int or_bpf_attach(struct or_bpf *b, const char *pod_name, int cgroup_fd, int netns_fd,
		  struct or_pod_links *out);
/* Unpins and destroys the links: the cgroup is no longer captured. */
void or_bpf_detach(struct or_pod_links *links);
/* Lets go of the links but leaves them pinned: the pod stays captured. */
void or_bpf_links_keep(struct or_pod_links *links);
/*
 * An enrollment that failed half way: links it attached are detached,
 * links it adopted are left as the previous agent had them.
 */
void or_bpf_links_abandon(struct or_pod_links *links);
/*
 * Removes what a previous agent left for pods this one does not want:
 * link dirs under pin_dir/links and or_pods entries of pods not named in
 * names[] ("namespace/name", cut to OR_NAME_LEN as in or_pod_val.name).
 * A wanted pod not enrolled yet keeps its pins: it stays captured (and
 * follows on_agent_down) until enrolled. Returns how many link dirs went.
 */
int or_bpf_sweep(struct or_bpf *b, const char *const *names, size_t n);

/*
 * Brings or_services and or_backends in line with r; without prune only
 * adds and updates (r is not the whole desired state yet). 0 or -errno.
 */
int or_bpf_sync_routes(struct or_bpf *b, const struct or_routes *r, bool prune);

int or_bpf_pod_update(struct or_bpf *b, uint64_t netns_cookie, const struct or_pod_val *val);
int or_bpf_pod_delete(struct or_bpf *b, uint64_t netns_cookie);

/* Takes (looks up and deletes) the original destination of an accepted flow. */
int or_bpf_origdst_take(const struct or_bpf *b, const struct or_origdst_key *key,
			struct or_dst *dst);

/* One or_inbound entry wanted: a pod's app port and its mode. */
struct or_inbound_want {
	struct or_inbound_key key;
	struct or_inbound_val val;
};
/* Makes or_inbound these entries (only these with prune). Returns 0 or -errno. */
int or_bpf_sync_inbound(struct or_bpf *b, const struct or_inbound_want *want, size_t n,
			bool prune);

/* Writes the node's mTLS counters into or_tls. */
int or_bpf_tls_update(struct or_bpf *b, const struct or_tls_counters *c);

/*
 * Writes or_settings: ABI version, pid, port and a fresh heartbeat; with
 * stopped, the kernel treats the agent as down at once (no successor).
 */
int or_bpf_heartbeat(struct or_bpf *b, bool stopped);

#endif
