// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The agent's memory against its cgroup's limit (see overload.h). The
 * reading is shared by every worker: one refreshes it when it is due (the
 * others keep using the last one), and every caller moves the estimate by
 * the buffer bytes taken since, which costs two atomic loads.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cgroup_find.h"
#include "log.h"
#include "metrics.h"
#include "overload.h"

#define MEMCG_MAX_LEVELS 8         /* the agent's cgroup and ancestors with a limit */
#define MEMCG_NO_LIMIT (1ull << 62) /* v1 says "no limit" with a number near 2^63 */
#define MEMCG_FILE_MAX 16384       /* memory.stat is ~2 KiB, /proc/self/cgroup less */
#define MOUNTINFO_MAX (256 * 1024) /* thousands of mounts in a busy container */
#define TRIM_EVERY_MS 1000         /* malloc_trim() while over the low-water mark */
#define FORCED_READ_MS 5           /* a read forced by growth, at most this often */
#define MMAP_THRESHOLD (256 * 1024) /* buffers this big are mmap()ed: freed means returned */

/*
 * glibc raises its mmap threshold each time a mmap()ed block is freed, up
 * to 32 MiB: HTTP request buffers of a few MiB would then come from the
 * heap, and stay there once freed. A fixed threshold gives them back to
 * the kernel when a connection ends (and grows them with mremap()), while
 * the fixed-size connections (2 x 64 KiB buffers) stay on the heap.
 */
__attribute__((constructor)) static void fixed_mmap_threshold(void)
{
	mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD);
}

struct memcg_level {
	char dir[PATH_MAX];
	uint64_t limit;
};

static struct {
	pthread_mutex_t lock; /* the fields below; a reader that finds it taken skips its turn */
	const char *proc_cgroup;
	const char *mountinfo;
	bool v2;
	struct memcg_level lv[MEMCG_MAX_LEVELS];
	size_t n_lv;
	uint64_t resolve_at_ms; /* look the cgroup up again from then; 0: now */
	uint64_t trim_at_ms;
} mc = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.proc_cgroup = "/proc/self/cgroup",
	.mountinfo = "/proc/self/mountinfo",
};

static _Atomic uint64_t next_read_ms;  /* the next reading is due */
static _Atomic uint64_t last_read_ms;  /* when the last one was made */
static _Atomic int64_t base_used;      /* working set of the tightest level at the last reading */
static _Atomic uint64_t base_limit;    /* its limit, 0 = none */
/*
 * Buffer bytes taken since that reading. Frees are not taken off: until
 * the next reading says so, memory given back to malloc may still count.
 */
static _Atomic int64_t grown;
/* Shedding since a growth was refused: it holds until the next reading decides. */
static _Atomic bool held;

/* ---- text ---- */

/* The whole (small) file into buf, NUL-terminated. Bytes read, or -errno. */
static ssize_t read_small(const char *path, char *buf, size_t cap)
{
	size_t len = 0;
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd == -1)
		return -errno;
	while (len + 1 < cap) {
		n = read(fd, buf + len, cap - 1 - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			n = -errno;
			close(fd);
			return n;
		}
		if (n == 0)
			break;
		len += n;
	}
	close(fd);
	buf[len] = '\0';
	return len;
}

/* Copies the next line of *text (without its newline) into line; false at the end. */
static bool next_line(const char **text, char *line, size_t cap)
{
	const char *s = *text, *nl;
	size_t n;

	if (!*s)
		return false;
	nl = strchr(s, '\n');
	n = nl ? (size_t)(nl - s) : strlen(s);
	*text = nl ? nl + 1 : s + n;
	if (n >= cap)
		n = cap - 1; /* longer than anything we look for: cut, it will not match */
	memcpy(line, s, n);
	line[n] = '\0';
	return true;
}

/* `tok` is one of the comma-separated items of list. */
static bool in_list(const char *list, const char *tok)
{
	size_t tl = strlen(tok);

	for (const char *p = list; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
		if (strncmp(p, tok, tl) == 0 && (p[tl] == ',' || p[tl] == '\0'))
			return true;
	return false;
}


/* The cgroup path of this process in the v2 or the v1 memory hierarchy. */
static int cgroup_path(const char *proc_cgroup, bool v2, char *out, size_t len)
{
	char line[PATH_MAX + 256];

	while (next_line(&proc_cgroup, line, sizeof(line))) {
		char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;

		if (!c2)
			continue;
		*c1 = *c2 = '\0';
		if (v2 ? strcmp(line, "0") != 0 || c2 != c1 + 1 : !in_list(c1 + 1, "memory"))
			continue;
		if ((size_t)snprintf(out, len, "%s", c2 + 1) >= len)
			return -ENAMETOOLONG;
		return 0;
	}
	return -ENOENT;
}

/* The mount point and root of the cgroup2 mount, or of the v1 one with memory. */
static int cgroup_mount(const char *mountinfo, bool v2, char *mnt, size_t mlen, char *root,
			size_t rlen)
{
	char line[2 * PATH_MAX + 512];

	while (next_line(&mountinfo, line, sizeof(line))) {
		char *f[6] = { 0 }, *save = NULL, *tok, *type = NULL, *sopts = NULL;
		int n = 0;

		for (tok = strtok_r(line, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
			if (n < 6) {
				f[n++] = tok;
				continue;
			}
			if (strcmp(tok, "-") != 0)
				continue; /* optional fields */
			type = strtok_r(NULL, " ", &save);
			if (type && strtok_r(NULL, " ", &save)) /* the source */
				sopts = strtok_r(NULL, " ", &save);
			break;
		}
		if (n < 6 || !type)
			continue;
		if (v2 ? strcmp(type, "cgroup2") != 0
		       : strcmp(type, "cgroup") != 0 || !sopts || !in_list(sopts, "memory"))
			continue;
		or_mountinfo_unescape(f[3]);
		or_mountinfo_unescape(f[4]);
		if ((size_t)snprintf(mnt, mlen, "%s", f[4]) >= mlen ||
		    (size_t)snprintf(root, rlen, "%s", f[3]) >= rlen)
			return -ENAMETOOLONG;
		return 0;
	}
	return -ENOENT;
}

int or_memcg_locate(const char *proc_cgroup, const char *mountinfo, bool v2, char *dir,
		    size_t len, size_t *mnt_len)
{
	char path[PATH_MAX], mnt[PATH_MAX], root[PATH_MAX];
	const char *rest = path;
	size_t rl, ml;
	int err;

	err = cgroup_path(proc_cgroup, v2, path, sizeof(path));
	if (!err)
		err = cgroup_mount(mountinfo, v2, mnt, sizeof(mnt), root, sizeof(root));
	if (err)
		return err;
	/*
	 * The mount shows the hierarchy from `root` down (a container's bind
	 * mount of its own cgroup): the path below it is what follows root.
	 */
	rl = strlen(root);
	if (strcmp(root, "/") != 0 && strncmp(path, root, rl) == 0 &&
	    (path[rl] == '/' || path[rl] == '\0'))
		rest = path + rl;
	ml = strlen(mnt);
	while (ml > 1 && mnt[ml - 1] == '/')
		mnt[--ml] = '\0';
	while (*rest == '/')
		rest++;
	if ((size_t)snprintf(dir, len, "%s%s%s", mnt, *rest && strcmp(mnt, "/") ? "/" : "",
			     rest) >= len)
		return -ENAMETOOLONG;
	/* No "..": a walk up the tree must end at the mount point. */
	if (strstr(rest, "..")) {
		snprintf(dir, len, "%s", mnt);
		ml = strlen(dir);
	}
	*mnt_len = ml;
	return 0;
}

int or_memcg_parse_u64(const char *text, uint64_t *out)
{
	unsigned long long v;
	char *end;

	while (*text == ' ' || *text == '\t')
		text++;
	if (strncmp(text, "max", 3) == 0 && (text[3] == '\n' || text[3] == '\0')) {
		*out = UINT64_MAX;
		return 0;
	}
	if (*text < '0' || *text > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(text, &end, 10);
	if (errno || (*end != '\n' && *end != '\0' && *end != ' '))
		return -EINVAL;
	*out = v;
	return 0;
}

int or_memcg_stat_get(const char *text, const char *key, uint64_t *out)
{
	size_t kl = strlen(key);
	char line[256];

	while (next_line(&text, line, sizeof(line)))
		if (strncmp(line, key, kl) == 0 && line[kl] == ' ')
			return or_memcg_parse_u64(line + kl + 1, out);
	return -ENOENT;
}

bool or_memcg_over(bool shedding, uint64_t used, uint64_t limit)
{
	if (!limit)
		return false;
	/* Shedding goes on until the working set is back under the low-water mark. */
	return used >= limit / 100 * (shedding ? OR_MEM_LOW_PCT : OR_MEM_HIGH_PCT);
}

/* ---- the reading ---- */

static const char *file_usage(void)
{
	return mc.v2 ? "memory.current" : "memory.usage_in_bytes";
}

static const char *file_limit(void)
{
	return mc.v2 ? "memory.max" : "memory.limit_in_bytes";
}

static int read_u64_at(const char *dir, const char *name, uint64_t *out)
{
	char path[PATH_MAX + 32], buf[64];
	ssize_t n;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	n = read_small(path, buf, sizeof(buf));
	if (n < 0)
		return n;
	return or_memcg_parse_u64(buf, out);
}

/* Which hierarchy holds memory, and the levels with a limit. Under mc.lock. */
static void resolve(void)
{
	char *cg = malloc(MEMCG_FILE_MAX), *mi = malloc(MOUNTINFO_MAX);
	char dir[PATH_MAX];
	size_t mnt_len = 0;
	uint64_t limit;
	int err = -ENOMEM;

	mc.n_lv = 0;
	if (!cg || !mi)
		goto out;
	if (read_small(mc.proc_cgroup, cg, MEMCG_FILE_MAX) < 0 ||
	    read_small(mc.mountinfo, mi, MOUNTINFO_MAX) < 0)
		goto out;
	for (int v2 = 1; v2 >= 0; v2--) {
		mc.v2 = v2;
		err = or_memcg_locate(cg, mi, v2, dir, sizeof(dir), &mnt_len);
		if (err)
			continue;
		/* v2 without the memory controller here has no memory.current. */
		if (read_u64_at(dir, file_usage(), &limit) == 0)
			break;
		err = -ENOENT;
	}
	if (err)
		goto out;
	/* Up the tree to the mount point: every level with a limit may be the one to hit. */
	for (;;) {
		if (read_u64_at(dir, file_limit(), &limit) == 0 && limit < MEMCG_NO_LIMIT &&
		    mc.n_lv < MEMCG_MAX_LEVELS) {
			snprintf(mc.lv[mc.n_lv].dir, sizeof(mc.lv[0].dir), "%s", dir);
			mc.lv[mc.n_lv++].limit = limit;
		}
		char *slash = strrchr(dir, '/');

		if (strlen(dir) <= mnt_len || !slash || (size_t)(slash - dir) < mnt_len)
			break;
		*slash = '\0';
	}
out:
	free(cg);
	free(mi);
}

/*
 * Reads every level; the one nearest its limit sets the base of the
 * estimate. Under mc.lock.
 */
static void read_levels(void)
{
	char *stat = NULL;
	uint64_t best_used = 0, best_limit = 0;
	char path[PATH_MAX + 32];

	for (size_t i = 0; i < mc.n_lv; i++) {
		struct memcg_level *l = &mc.lv[i];
		uint64_t usage, inactive = 0, limit;

		if (read_u64_at(l->dir, file_usage(), &usage))
			continue;
		/* The limit may have been changed since: take it as it is now. */
		if (read_u64_at(l->dir, file_limit(), &limit) == 0)
			l->limit = limit < MEMCG_NO_LIMIT ? limit : 0;
		if (!l->limit)
			continue;
		if (!stat)
			stat = malloc(MEMCG_FILE_MAX);
		snprintf(path, sizeof(path), "%s/memory.stat", l->dir);
		if (stat && read_small(path, stat, MEMCG_FILE_MAX) > 0)
			or_memcg_stat_get(stat, mc.v2 ? "inactive_file" : "total_inactive_file",
					  &inactive);
		usage = usage > inactive ? usage - inactive : 0;
		/* Nearest to its limit: compare used/limit without dividing. */
		if (!best_limit || (__uint128_t)usage * best_limit >= (__uint128_t)best_used * l->limit) {
			best_used = usage;
			best_limit = l->limit;
		}
	}
	free(stat);
	atomic_store(&base_used, (int64_t)best_used);
	atomic_store(&base_limit, best_limit);
	atomic_store(&or_overload_stats.memory_bytes, best_used);
	atomic_store(&or_overload_stats.memory_limit, best_limit);
}

/* The working set now, at most: the last reading plus the buffer bytes taken since. */
static uint64_t estimate(int64_t more)
{
	int64_t used = atomic_load(&base_used) + atomic_load(&grown) + more;

	return used > 0 ? (uint64_t)used : 0;
}

/* Shedding from now on (or not), logged when it changes. */
static void set_shedding(int was, bool now, uint64_t used, uint64_t limit)
{
	if (now != (bool)was &&
	    atomic_compare_exchange_strong(&or_overload_stats.memory_shedding, &was, now)) {
		if (now)
			or_warn("memory high-water mark passed: shedding new connections",
				"working_set=%llu limit=%llu high_pct=%d", (unsigned long long)used,
				(unsigned long long)limit, OR_MEM_HIGH_PCT);
		else
			or_info("memory back under the low-water mark: accepting again",
				"working_set=%llu limit=%llu low_pct=%d", (unsigned long long)used,
				(unsigned long long)limit, OR_MEM_LOW_PCT);
	}
}

/* Shedding as of now, with hysteresis. */
static bool update(void)
{
	uint64_t limit = atomic_load(&base_limit), used = estimate(0);
	int was = atomic_load(&or_overload_stats.memory_shedding);
	bool now = or_memcg_over(was, used, limit) || (was && atomic_load(&held));

	set_shedding(was, now, used, limit);
	return now;
}

/*
 * A new reading when it is due, or (force) when buffers grew a lot since
 * the last one: a burst can fill memory faster than OR_MEM_CHECK_MS.
 */
static void refresh(uint64_t now_ms, bool force)
{
	uint64_t due = atomic_load(&next_read_ms);
	int64_t g0;
	bool near;

	if (force) {
		if (now_ms < atomic_load(&last_read_ms) + FORCED_READ_MS)
			return;
	} else if (now_ms < due ||
		   /* One thread reads; the others go on with the last reading. */
		   !atomic_compare_exchange_strong(&next_read_ms, &due, now_ms + OR_MEM_CHECK_MS)) {
		return;
	}
	if (pthread_mutex_trylock(&mc.lock))
		return;
	atomic_store(&last_read_ms, now_ms);
	atomic_store(&next_read_ms, now_ms + OR_MEM_CHECK_MS);
	if (now_ms >= mc.resolve_at_ms) {
		resolve();
		mc.resolve_at_ms = now_ms + OR_MEM_RESOLVE_MS;
	}
	/* What grows while we read stays counted: twice at worst, never not at all. */
	g0 = atomic_load(&grown);
	read_levels();
	atomic_fetch_sub(&grown, g0);
	atomic_store(&held, false);
	near = or_memcg_over(true, estimate(0), atomic_load(&base_limit));
	if (near) {
		atomic_store(&next_read_ms, now_ms + OR_MEM_CHECK_NEAR_MS);
		/* Freed buffers may sit in malloc's arenas: give them back, or we never get under. */
		if (now_ms >= mc.trim_at_ms) {
			malloc_trim(0);
			mc.trim_at_ms = now_ms + TRIM_EVERY_MS;
		}
	}
	pthread_mutex_unlock(&mc.lock);
}

bool or_overload_shed(uint64_t now_ms)
{
	refresh(now_ms, false);
	return update();
}

bool or_overload_may_grow(uint64_t now_ms, size_t more)
{
	uint64_t limit = atomic_load(&base_limit);

	/* Grown by a good part of the headroom since the last reading: read again now. */
	refresh(now_ms, limit && atomic_load(&grown) + (int64_t)more >= (int64_t)(limit / 32));
	if (update())
		return false;
	limit = atomic_load(&base_limit);
	if (!limit || estimate((int64_t)more) < limit / 100 * OR_MEM_HIGH_PCT)
		return true;
	/* This growth would reach the high-water mark: that is where shedding starts. */
	atomic_store(&held, true);
	set_shedding(0, true, estimate((int64_t)more), limit);
	return false;
}

void or_overload_poll(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	or_overload_shed((uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

void or_overload_buffers(int64_t delta)
{
	atomic_fetch_add_explicit(&or_overload_stats.buffered_bytes, delta, memory_order_relaxed);
	if (delta > 0)
		atomic_fetch_add_explicit(&grown, delta, memory_order_relaxed);
}

void or_overload_memcg_reset(const char *proc_cgroup, const char *mountinfo)
{
	pthread_mutex_lock(&mc.lock);
	mc.proc_cgroup = proc_cgroup ? proc_cgroup : "/proc/self/cgroup";
	mc.mountinfo = mountinfo ? mountinfo : "/proc/self/mountinfo";
	mc.n_lv = 0;
	mc.resolve_at_ms = 0;
	mc.trim_at_ms = 0;
	pthread_mutex_unlock(&mc.lock);
	atomic_store(&next_read_ms, 0);
	atomic_store(&last_read_ms, 0);
	atomic_store(&base_used, 0);
	atomic_store(&base_limit, 0);
	atomic_store(&grown, 0);
	atomic_store(&held, false);
	atomic_store(&or_overload_stats.memory_shedding, 0);
}
