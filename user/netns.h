/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Entering pod network namespaces. setns() changes only the calling
 * thread's netns, so a worker can create a socket inside a pod and return;
 * the socket stays in the pod's netns for its whole life.
 */
#ifndef OR_NETNS_H
#define OR_NETNS_H

/* Opens the agent's own netns once, at start-up. Returns 0 or -errno. */
int or_netns_init(void);
void or_netns_fini(void);
/* Opens a netns file (/run/netns/X or /proc/PID/ns/net): fd or -errno. */
int or_netns_open(const char *path);
/*
 * Switches the calling thread into netns_fd; or_netns_leave() comes back.
 * netns_fd -1 means the agent's own netns (sidecar mode, where the agent
 * already lives in its pod): both are then no-ops, needing no privilege.
 */
int or_netns_enter(int netns_fd);
int or_netns_leave(void);

#endif
