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
};

/*
 * Loads the config, the BPF programs, starts the workers and enrolls pods.
 * With sidecar ("namespace/name"), sidecar mode instead: no BPF, and the
 * one pod is served from inside its netns (proxy.h). Returns 0 or -errno;
 * on failure everything started is stopped again.
 */
int or_agent_start(struct or_agent *a, const char *config_path, const char *sidecar);
/* Runs until SIGTERM/SIGINT. SIGHUP reloads. Returns 0 or -errno. */
int or_agent_run(struct or_agent *a);
/* Unenrolls every pod, stops workers, removes pins. */
void or_agent_stop(struct or_agent *a);

#endif
