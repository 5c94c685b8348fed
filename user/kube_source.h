/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The Kubernetes source of desired state: what the watchers hold, added to
 * a config parsed from the YAML file, so that both sources reach the maps
 * and attachments through the same path (the agent's apply()).
 *
 *   namespaces  every namespace with its labels; a `namespaces:` entry of
 *               the same name in the file keeps its mtls mode
 *   pods        this node's pods that have an IP and are not hostNetwork or
 *               finished; those to enroll get their cgroup v2 directory and
 *               netns (/proc/PID/ns/net of a process in it) found on the node
 *   services    each ClusterIP service port (TCP), one entry per address
 *               family, with the ready endpoints of its EndpointSlices;
 *               default policy. A `services:` entry of the same
 *               namespace/name in the file wins, as does one already using
 *               the same VIP:port.
 * Pods and services named in the file are kept; the API adds to them.
 */
#ifndef OR_KUBE_SOURCE_H
#define OR_KUBE_SOURCE_H

#include <stddef.h>

#include "config.h"
#include "kube_watch.h"

/*
 * Adds the store's objects to cfg. *pending counts pods to enroll whose
 * cgroup or first process is not there yet: left out now, the caller tries
 * again shortly. Returns 0 or -ENOMEM (cfg is then still whole, and may be
 * freed, but not applied).
 */
int or_kube_merge(struct or_kube *k, struct or_config *cfg, size_t *pending);

/* Forgets the pods' resolved cgroups and netns paths (at agent stop). */
void or_kube_source_reset(void);

#endif
