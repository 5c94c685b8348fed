/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * On the node: from a pod's UID and QoS class to its cgroup v2 directory,
 * for both kubelet cgroup drivers, and from there to a process in it and
 * its network namespace.
 *   systemd:  <root>/kubepods.slice/kubepods-<qos>.slice/kubepods-<qos>-pod<uid_>.slice
 *             (Guaranteed: <root>/kubepods.slice/kubepods-pod<uid_>.slice), where uid_
 *             is the UID with '-' replaced by '_'
 *   cgroupfs: <root>/kubepods/<qos>/pod<uid>   (Guaranteed: <root>/kubepods/pod<uid>)
 * with <qos> "burstable" or "besteffort". A pod whose directory or process
 * is not there yet returns -ENOENT: the caller retries, it does not drop.
 */
#ifndef OR_CGROUP_FIND_H
#define OR_CGROUP_FIND_H

#include <stddef.h>
#include <sys/types.h>

/* The cgroup2 mount point from /proc/self/mountinfo (or the given file). 0 or -ENOENT. */
int or_cgroup2_root(const char *mountinfo_path, char *buf, size_t len);
/* Decodes mountinfo's \ooo escapes (space, tab, newline, backslash) in place. */
void or_mountinfo_unescape(char *s);

/*
 * The pod's cgroup directory under root. qos is the pod's status.qosClass
 * ("Guaranteed", "Burstable", "BestEffort"; NULL or unknown: try all).
 * Tries the systemd layout, then cgroupfs. 0 and the path, -ENOENT, or
 * -EINVAL for a malformed UID (only [0-9a-f-], 36 chars).
 */
int or_cgroup_find_pod(const char *root, const char *uid, const char *qos, char *buf,
		       size_t len);

/*
 * A process of the pod: the first PID in cgroup.procs of the pod directory
 * or, depth first, of its container subdirectories (the pause container
 * counts). 0 and *pid, or -ENOENT when none runs yet.
 */
int or_cgroup_pod_pid(const char *pod_dir, pid_t *pid);

/* "/proc/<pid>/ns/net" into buf. 0 or -ENAMETOOLONG. */
int or_netns_path_of(pid_t pid, char *buf, size_t len);

#endif
