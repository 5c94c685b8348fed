/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The agent as a whole: the config in force, the kernel state, the enrolled
 * pods, and the main thread's loop (signals, heartbeat, retries).
 */
#ifndef OR_AGENT_H
#define OR_AGENT_H

#include "admin.h"
#include "bpf_state.h"
#include "config.h"
#include "enroll.h"
#include "ev.h"
#include "handover.h"
#include "identity.h"
#include "kube_watch.h"

struct or_agent {
	const char *config_path;
	const char *sidecar;   /* sidecar mode: the one pod served ("namespace/name"), else NULL */
	struct or_config *cfg; /* the config in force */
	struct or_bpf bpf;
	struct or_enrolled *pods;
	bool pods_pending; /* some pod could not be enrolled yet: retry */
	struct ev_loop *loop;
	int signal_fd;
	struct ev_io signal_io;
	struct ev_timer heartbeat;
	struct ev_timer retry;
	struct or_admin *admin;
	struct or_ca *ca;          /* signs the pods' SVIDs; loaded once */
	bool ca_down;              /* its files no longer hold it: nothing is signed */
	bool ready;                /* programs loaded, a config in force */
	size_t n_enrolled;
	uint64_t reloads_ok, reloads_failed;
	/* `kubernetes:`: the watchers, and a rebuild soon after they change */
	struct or_kube *kube;
	struct ev_io kube_io;
	struct ev_timer kube_settle;
	size_t kube_pending;       /* pods waiting for their cgroup: rebuild again soon */
	uint64_t kube_pending_ms;  /* ... after this long (backs off) */
	bool kube_applied;         /* desired state from a synced store is in force */
	uint64_t kube_applies;
	/* take-over: the predecessor's sockets until we serve every pod, then READY */
	struct or_ho_client ho;
	bool ho_active;
	uint64_t ho_deadline_ms;     /* READY by then even if a pod is still pending */
	struct or_ho_server *ho_srv; /* where a successor asks us for ours */
	int ho_admin_fd[2];          /* its admin and ready listeners, until admin starts */
	char ho_path[PATH_MAX];
	char ho_who[OR_HO_KEY_MAX]; /* node (and sidecar pod): only its own kind takes over */
	/* stopping (SIGTERM) or replaced: established connections run out */
	bool draining;
	bool replaced;
	bool wait_replaced; /* --when-replaced wait: idle after the drain until SIGTERM */
	bool drained;
	bool term_seen; /* SIGTERM while draining after a take-over */
	pthread_mutex_t beat_lock; /* worker 0 beats; the main thread stops it */
	bool beating;
	uint64_t drain_deadline_ms;
	struct ev_timer drain;
};

/*
 * Loads the config, the BPF programs, starts the workers and enrolls pods.
 * With sidecar ("namespace/name"), sidecar mode instead: no BPF, and the
 * one pod is served from inside its netns (proxy.h). Returns 0 or -errno;
 * on failure everything started is stopped again.
 */
int or_agent_start(struct or_agent *a, const char *config_path, const char *sidecar,
		   bool wait_replaced);
/*
 * Runs until the drain after SIGTERM/SIGINT (or after a successor took
 * over) is done; with wait_replaced, a replaced agent then waits for
 * SIGTERM. SIGHUP reloads. Returns 0 or -errno.
 */
int or_agent_run(struct or_agent *a);
/*
 * Stops workers (closing what connections are left) and frees everything.
 * The pins stay: pods remain captured, and the next agent adopts them
 * (`outriderctl uninstall` removes them).
 */
void or_agent_stop(struct or_agent *a);

#endif
