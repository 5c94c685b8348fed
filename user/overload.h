/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Memory shedding: the agent watches its own memory cgroup and sheds load
 * before the kernel's OOM killer would end it.
 *
 * What is watched: the working set (usage less inactive file pages, as the
 * kubelet counts it) of the agent's memory cgroup and of every ancestor
 * with a limit, cgroup v2 (memory.current, memory.max) or v1
 * (memory.usage_in_bytes, memory.limit_in_bytes), whichever holds the
 * memory controller. The files are read at most every OR_MEM_CHECK_MS, by
 * whichever worker asks first; between two reads the buffer bytes the data
 * path takes and gives back (or_overload_buffers) move the estimate at
 * once, so a burst of buffer growth counts before the next read.
 *
 * Above OR_MEM_HIGH_PCT of the tightest limit new connections are shed (HTTP:
 * 503 with x-outrider-overloaded, TCP and tunnels: closed) and no buffer
 * grows (an HTTP request whose buffer cannot grow is streamed instead of
 * held, or waits); below OR_MEM_LOW_PCT connections are taken again.
 * Without a limit nothing is ever shed. Thread-safe.
 */
#ifndef OR_OVERLOAD_H
#define OR_OVERLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OR_MEM_CHECK_MS 250      /* between reads of the cgroup files, when far from the limit */
#define OR_MEM_CHECK_NEAR_MS 50  /* ... and when over the low-water mark */
#define OR_MEM_RESOLVE_MS 10000  /* where the cgroup is: looked up again this often */
#define OR_MEM_HIGH_PCT 85       /* of the limit: shed from here */
#define OR_MEM_LOW_PCT 75        /* ... until back under this */

/* New connections are to be shed now (refreshing the reading when it is due). */
bool or_overload_shed(uint64_t now_ms);

/*
 * A buffer may grow by `more` bytes now: not shedding, and it stays under
 * the high-water mark (a growth that would not starts the shedding).
 */
bool or_overload_may_grow(uint64_t now_ms, size_t more);

/*
 * Refreshes the reading when it is due and the shedding state with it
 * (/metrics calls this, so the gauges move while no connection arrives).
 */
void or_overload_poll(void);

/* The data path took (delta > 0) or gave back (delta < 0) buffer memory. */
void or_overload_buffers(int64_t delta);

/*
 * Tests: read /proc/self/cgroup and /proc/self/mountinfo from these files
 * instead (NULL: the real ones), and forget what was read so far.
 */
void or_overload_memcg_reset(const char *proc_cgroup, const char *mountinfo);

/* ---- the parts that only look at text (unit-tested) ---- */

/*
 * The memory cgroup directory of this process: from /proc/self/cgroup
 * text and /proc/self/mountinfo text, for cgroup v2 (v2 true: the "0::"
 * line and the cgroup2 mount) or v1 (the hierarchy with the memory
 * controller). *mnt_len is the length of the mount point at the start of
 * dir (where a walk up the tree ends). 0, or -ENOENT, or -ENAMETOOLONG.
 */
int or_memcg_locate(const char *proc_cgroup, const char *mountinfo, bool v2, char *dir,
		    size_t len, size_t *mnt_len);

/* A number file's value; "max" (v2, no limit) is UINT64_MAX. 0 or -EINVAL. */
int or_memcg_parse_u64(const char *text, uint64_t *out);

/* The value of `key` in memory.stat text ("key value" lines). 0 or -ENOENT. */
int or_memcg_stat_get(const char *text, const char *key, uint64_t *out);

/* Shedding after a reading of `used` against `limit` (0: none), with hysteresis. */
bool or_memcg_over(bool shedding, uint64_t used, uint64_t limit);

#endif
