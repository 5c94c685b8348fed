// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Memory shedding (user/overload.c): finding the memory cgroup from
 * /proc/self/cgroup and mountinfo text (v2, v1, container bind mounts),
 * the number and memory.stat parsers, the hysteresis, and the whole
 * reading on fake cgroup trees made under a mkdtemp() directory (v2 and
 * v1 file names, a limit on an ancestor), driven with explicit clocks.
 * The suite's .fini removes the tree.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "metrics.h"
#include "overload.h"

#define MiB (1024ull * 1024)

static char tmp[PATH_MAX];

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path) == -1 ? -1 : 0;
}

static void tmp_remove(void)
{
	if (tmp[0])
		nftw(tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	tmp[0] = '\0';
	or_overload_memcg_reset(NULL, NULL);
}

static void tmp_make(void)
{
	strcpy(tmp, "/tmp/outrider-overload-XXXXXX");
	cr_assert_not_null(mkdtemp(tmp), "mkdtemp: %s", strerror(errno));
}

/* Writes text to tmp/rel, making its directories. */
static void put(const char *rel, const char *fmt, ...)
{
	char path[PATH_MAX];
	va_list ap;
	FILE *f;

	cr_assert_lt(snprintf(path, sizeof(path), "%s/%s", tmp, rel), (int)sizeof(path));
	for (char *p = path + strlen(tmp) + 1; (p = strchr(p, '/')); p++) {
		*p = '\0';
		mkdir(path, 0755);
		*p = '/';
	}
	f = fopen(path, "w");
	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fclose(f);
}

/* ---- text ---- */

Test(overload_text, locate_v2)
{
	char dir[PATH_MAX];
	size_t ml;

	cr_assert_eq(or_memcg_locate("0::/system.slice/outrider.service\n",
				     "30 20 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw\n",
				     true, dir, sizeof(dir), &ml),
		     0);
	cr_expect_str_eq(dir, "/sys/fs/cgroup/system.slice/outrider.service");
	cr_expect_eq(ml, strlen("/sys/fs/cgroup"));

	/* In its own cgroup namespace: "/" is the cgroup, the mount is its root. */
	cr_assert_eq(or_memcg_locate("0::/\n", "1 0 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
				     true, dir, sizeof(dir), &ml),
		     0);
	cr_expect_str_eq(dir, "/sys/fs/cgroup");
	cr_expect_eq(ml, strlen("/sys/fs/cgroup"));
}

Test(overload_text, locate_bind_mount_root_is_stripped)
{
	char dir[PATH_MAX];
	size_t ml;

	/* A container that sees its own cgroup mounted at /sys/fs/cgroup. */
	cr_assert_eq(or_memcg_locate("0::/kubepods/pod1/c1\n",
				     "5 1 0:26 /kubepods/pod1/c1 /sys/fs/cgroup ro - cgroup2 cgroup2 rw\n",
				     true, dir, sizeof(dir), &ml),
		     0);
	cr_expect_str_eq(dir, "/sys/fs/cgroup");
	/* Escapes in the mount point are decoded. */
	cr_assert_eq(or_memcg_locate("0::/a\n", "5 1 0:26 / /mnt/with\\040space rw - cgroup2 none rw\n",
				     true, dir, sizeof(dir), &ml),
		     0);
	cr_expect_str_eq(dir, "/mnt/with space/a");
}

Test(overload_text, locate_v1_memory_hierarchy)
{
	static const char cg[] = "9:name=systemd:/\n"
				 "5:cpu,cpuacct:/other\n"
				 "4:memory:/process_api/abc\n"
				 "0::/\n";
	static const char mi[] =
		"31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
		"32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct\n"
		"35 31 0:32 / /sys/fs/cgroup/memory rw,relatime shared:9 - cgroup cgroup rw,memory\n"
		"41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
	char dir[PATH_MAX];
	size_t ml;

	cr_assert_eq(or_memcg_locate(cg, mi, false, dir, sizeof(dir), &ml), 0);
	cr_expect_str_eq(dir, "/sys/fs/cgroup/memory/process_api/abc");
	cr_expect_eq(ml, strlen("/sys/fs/cgroup/memory"));
	/* "memorysomething" is not the memory controller. */
	cr_expect_eq(or_memcg_locate("4:memoryx:/a\n", mi, false, dir, sizeof(dir), &ml), -ENOENT);
	cr_expect_eq(or_memcg_locate(cg, "1 0 0:1 / / rw - ext4 /dev/sda rw\n", false, dir,
				     sizeof(dir), &ml),
		     -ENOENT);
	cr_expect_eq(or_memcg_locate("", mi, true, dir, sizeof(dir), &ml), -ENOENT);
}

Test(overload_text, numbers)
{
	uint64_t v;

	cr_expect_eq(or_memcg_parse_u64("max\n", &v), 0);
	cr_expect_eq(v, UINT64_MAX);
	cr_expect_eq(or_memcg_parse_u64("52428800\n", &v), 0);
	cr_expect_eq(v, 52428800);
	cr_expect_eq(or_memcg_parse_u64("9223372036854771712", &v), 0);
	cr_expect_eq(or_memcg_parse_u64("", &v), -EINVAL);
	cr_expect_eq(or_memcg_parse_u64("-1\n", &v), -EINVAL);
	cr_expect_eq(or_memcg_parse_u64("12abc\n", &v), -EINVAL);
	cr_expect_eq(or_memcg_parse_u64("99999999999999999999999\n", &v), -EINVAL);
}

Test(overload_text, stat_keys)
{
	static const char st[] = "anon 100\nfile 200\nactive_file 5\ninactive_file 77\n"
				 "total_inactive_file 12\n";
	uint64_t v;

	cr_expect_eq(or_memcg_stat_get(st, "inactive_file", &v), 0);
	cr_expect_eq(v, 77);
	cr_expect_eq(or_memcg_stat_get(st, "total_inactive_file", &v), 0);
	cr_expect_eq(v, 12);
	cr_expect_eq(or_memcg_stat_get(st, "file", &v), 0);
	cr_expect_eq(v, 200);
	cr_expect_eq(or_memcg_stat_get(st, "inactive", &v), -ENOENT);
}

Test(overload_text, hysteresis)
{
	uint64_t lim = 100 * MiB;

	cr_expect(!or_memcg_over(false, 84 * MiB, lim));
	cr_expect(or_memcg_over(false, 86 * MiB, lim));
	/* Once shedding, it goes on until under the low-water mark. */
	cr_expect(or_memcg_over(true, 80 * MiB, lim));
	cr_expect(!or_memcg_over(true, 74 * MiB, lim));
	/* No limit: never. */
	cr_expect(!or_memcg_over(false, UINT64_MAX, 0));
}

/* ---- the reading, on fake trees ---- */

TestSuite(overload_tree, .fini = tmp_remove);

static char proc_cgroup[PATH_MAX], mountinfo[PATH_MAX];

/* A cgroup2 mount at tmp/cg, this process in /a/b, fake /proc files beside it. */
static void tree_v2(void)
{
	tmp_make();
	snprintf(proc_cgroup, sizeof(proc_cgroup), "%s/proc_cgroup", tmp);
	snprintf(mountinfo, sizeof(mountinfo), "%s/mountinfo", tmp);
	put("proc_cgroup", "0::/a/b\n");
	put("mountinfo", "30 20 0:26 / %s/cg rw - cgroup2 cgroup2 rw\n", tmp);
	put("cg/memory.stat", "anon 0\n"); /* the root: no memory.max */
	put("cg/a/memory.max", "max\n");
	put("cg/a/memory.current", "0\n");
	put("cg/a/b/memory.max", "%llu\n", 100 * MiB);
	put("cg/a/b/memory.current", "%llu\n", 50 * MiB);
	put("cg/a/b/memory.stat", "anon 1\ninactive_file %llu\n", 10 * MiB);
	or_overload_memcg_reset(proc_cgroup, mountinfo);
}

Test(overload_tree, v2_reading_shedding_and_recovery)
{
	uint64_t t = 1000000;

	tree_v2();
	cr_expect(!or_overload_shed(t));
	cr_expect_eq(atomic_load(&or_overload_stats.memory_limit), 100 * MiB);
	/* Inactive file pages are not counted: the kernel takes them back first. */
	cr_expect_eq(atomic_load(&or_overload_stats.memory_bytes), 40 * MiB);

	/* Over 85 %: shed, but only once the next reading is due. */
	put("cg/a/b/memory.current", "%llu\n", 96 * MiB);
	cr_expect(!or_overload_shed(t + 10));
	cr_expect(or_overload_shed(t + OR_MEM_CHECK_MS));
	cr_expect_eq(atomic_load(&or_overload_stats.memory_shedding), 1);
	cr_expect(!or_overload_may_grow(t + OR_MEM_CHECK_MS, 4096));

	/* 80 %: still over the low-water mark. */
	t += OR_MEM_CHECK_MS;
	put("cg/a/b/memory.current", "%llu\n", 90 * MiB);
	cr_expect(or_overload_shed(t + OR_MEM_CHECK_NEAR_MS));
	/* 70 %: accepting again. */
	t += OR_MEM_CHECK_NEAR_MS;
	put("cg/a/b/memory.current", "%llu\n", 80 * MiB);
	cr_expect(!or_overload_shed(t + OR_MEM_CHECK_NEAR_MS));
	cr_expect_eq(atomic_load(&or_overload_stats.memory_shedding), 0);
}

Test(overload_tree, growth_counts_before_the_next_reading)
{
	uint64_t t = 2000000;

	tree_v2();
	cr_expect(!or_overload_shed(t)); /* 40 MiB of 100 */
	cr_expect(or_overload_may_grow(t, 30 * MiB));
	or_overload_buffers(30 * MiB);
	/* 40 + 30 taken, no reading since: another 20 would pass 85 %. No, and shedding starts. */
	cr_expect(!or_overload_may_grow(t + 1, 20 * MiB));
	cr_expect(or_overload_shed(t + 2));
	cr_expect_eq(atomic_load(&or_overload_stats.memory_shedding), 1);
	/* Given back, and the next reading shows it: over. */
	or_overload_buffers(-30 * (int64_t)MiB);
	put("cg/a/b/memory.current", "%llu\n", 60 * MiB);
	cr_expect(!or_overload_shed(t + OR_MEM_CHECK_MS));
	cr_expect(or_overload_may_grow(t + OR_MEM_CHECK_MS + 1, MiB));
	cr_expect_eq(atomic_load(&or_overload_stats.buffered_bytes), 0);
}

Test(overload_tree, the_tightest_level_decides)
{
	uint64_t t = 3000000;

	tree_v2();
	/* The parent's limit is the nearer one: 60 of 64 MiB beats 50 of 100. */
	put("cg/a/memory.max", "%llu\n", 64 * MiB);
	put("cg/a/memory.current", "%llu\n", 60 * MiB);
	cr_expect(or_overload_shed(t));
	cr_expect_eq(atomic_load(&or_overload_stats.memory_limit), 64 * MiB);
}

Test(overload_tree, v1_names)
{
	uint64_t t = 4000000;

	tmp_make();
	snprintf(proc_cgroup, sizeof(proc_cgroup), "%s/proc_cgroup", tmp);
	snprintf(mountinfo, sizeof(mountinfo), "%s/mountinfo", tmp);
	put("proc_cgroup", "4:memory:/x\n0::/\n");
	/* A cgroup2 mount without the memory controller comes first, and is passed over. */
	put("mountinfo", "41 31 0:38 / %s/unified rw - cgroup2 cgroup2 rw\n"
			 "35 31 0:32 / %s/mem rw - cgroup cgroup rw,memory\n", tmp, tmp);
	put("unified/cgroup.procs", "");
	put("mem/memory.limit_in_bytes", "9223372036854771712\n");
	put("mem/memory.usage_in_bytes", "1\n");
	put("mem/x/memory.limit_in_bytes", "%llu\n", 48 * MiB);
	put("mem/x/memory.usage_in_bytes", "%llu\n", 46 * MiB);
	put("mem/x/memory.stat", "cache 4\ninactive_file 9\ntotal_inactive_file %llu\n", 2 * MiB);
	or_overload_memcg_reset(proc_cgroup, mountinfo);
	cr_expect(or_overload_shed(t));
	cr_expect_eq(atomic_load(&or_overload_stats.memory_limit), 48 * MiB);
	cr_expect_eq(atomic_load(&or_overload_stats.memory_bytes), 44 * MiB);
}

Test(overload_tree, no_limit_never_sheds)
{
	uint64_t t = 5000000;

	tree_v2();
	put("cg/a/b/memory.max", "max\n");
	put("cg/a/b/memory.current", "%llu\n", 1000 * MiB);
	cr_expect(!or_overload_shed(t));
	cr_expect(or_overload_may_grow(t, 1000 * MiB));
	cr_expect_eq(atomic_load(&or_overload_stats.memory_limit), 0);
	/* Nothing to read at all (no such files): the same. */
	or_overload_memcg_reset("/nonexistent/cgroup", "/nonexistent/mountinfo");
	cr_expect(!or_overload_shed(t + OR_MEM_RESOLVE_MS));
}
