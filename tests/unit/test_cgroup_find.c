// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Pod UID -> cgroup directory -> PID -> netns path, on real directory trees
 * made under a mkdtemp() directory (both kubelet drivers, all three QoS
 * classes), on mountinfo fixtures, and once on the real cgroup2 mount with a
 * real process moved into a pod's container cgroup. Every suite's .fini
 * removes what its tests made, so a failed assertion leaves nothing behind.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cgroup_find.h"

#define UID "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
#define UID_ "0f1e2d3c_4b5a_6978_8796_a5b4c3d2e1f0"

static char tmp[PATH_MAX];

static void tmp_make(void)
{
	strcpy(tmp, "/tmp/outrider-cgfind-XXXXXX");
	cr_assert_not_null(mkdtemp(tmp), "mkdtemp: %s", strerror(errno));
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path) == -1 ? -1 : 0;
}

static void tmp_remove(void)
{
	if (tmp[0])
		nftw(tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	tmp[0] = '\0';
}

static void in_tmp(char *out, const char *rel)
{
	cr_assert_lt(snprintf(out, PATH_MAX, "%s/%s", tmp, rel), PATH_MAX, "path of %s", rel);
}

/* mkdir -p of tmp/rel. */
static void mkdirs(const char *rel)
{
	char path[PATH_MAX];
	char *p;

	in_tmp(path, rel);
	for (p = path + strlen(tmp) + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		cr_assert(mkdir(path, 0755) == 0 || errno == EEXIST, "mkdir %s: %s", path,
			  strerror(errno));
		*p = '/';
	}
	cr_assert(mkdir(path, 0755) == 0 || errno == EEXIST, "mkdir %s: %s", path,
		  strerror(errno));
}

static void write_file(const char *rel, const char *text)
{
	char path[PATH_MAX];
	FILE *f;

	in_tmp(path, rel);
	f = fopen(path, "w");
	cr_assert_not_null(f, "fopen %s: %s", path, strerror(errno));
	cr_assert_eq(fputs(text, f) >= 0, 1, "write %s", path);
	cr_assert_eq(fclose(f), 0, "close %s", path);
}

/* ---- mountinfo ---- */

TestSuite(cgroup2_root, .init = tmp_make, .fini = tmp_remove);

static const char hybrid[] =
	"22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
	"25 22 0:22 / /sys rw,nosuid shared:7 - sysfs sysfs rw\n"
	"26 25 0:23 / /sys/fs/cgroup ro,nosuid shared:8 - tmpfs tmpfs ro,mode=755\n"
	"27 26 0:24 / /sys/fs/cgroup/systemd rw,nosuid shared:9 - cgroup cgroup rw,name=systemd\n"
	/* a decoy: the source is called cgroup2, the type is not */
	"28 22 0:30 / /mnt/decoy rw - tmpfs cgroup2 rw\n"
	"29 26 0:25 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw,nsdelegate\n"
	"30 26 0:26 / /sys/fs/cgroup/memory rw,nosuid shared:11 - cgroup cgroup rw,memory\n";

static const char pure[] =
	"22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
	"25 22 0:22 / /sys rw,nosuid shared:7 - sysfs sysfs rw\n"
	"26 25 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec shared:8 - cgroup2 cgroup2 rw\n";

/* No optional fields at all, and a mount point with a space, a tab and a backslash. */
static const char escaped[] =
	"22 1 8:1 / / rw - ext4 /dev/sda1 rw\n"
	"40 22 0:41 / /run/my\\040cg\\011x\\134y rw - cgroup2 none rw\n";

static void root_of(const char *text, const char *want)
{
	char path[PATH_MAX], got[PATH_MAX];
	int err;

	write_file("mountinfo", text);
	in_tmp(path, "mountinfo");
	memset(got, 'x', sizeof(got));
	err = or_cgroup2_root(path, got, sizeof(got));
	cr_assert_eq(err, 0, "or_cgroup2_root: %d", err);
	cr_expect_str_eq(got, want);
}

Test(cgroup2_root, hybrid_layout_is_the_unified_mount)
{
	root_of(hybrid, "/sys/fs/cgroup/unified");
}

Test(cgroup2_root, pure_layout)
{
	root_of(pure, "/sys/fs/cgroup");
}

Test(cgroup2_root, octal_escapes_are_decoded)
{
	root_of(escaped, "/run/my cg\tx\\y");
}

Test(cgroup2_root, no_cgroup2_mount_is_enoent)
{
	char path[PATH_MAX], got[64];

	write_file("mountinfo",
		   "22 1 8:1 / / rw shared:1 - ext4 /dev/sda1 rw\n"
		   "27 22 0:24 / /sys/fs/cgroup/systemd rw shared:9 - cgroup cgroup rw\n");
	in_tmp(path, "mountinfo");
	cr_expect_eq(or_cgroup2_root(path, got, sizeof(got)), -ENOENT);
	write_file("mountinfo", "");
	cr_expect_eq(or_cgroup2_root(path, got, sizeof(got)), -ENOENT, "empty file");
	write_file("mountinfo", "garbage without fields\n1 2 3 4 /x opts cgroup2\n");
	cr_expect_eq(or_cgroup2_root(path, got, sizeof(got)), -ENOENT, "no separator");
}

Test(cgroup2_root, missing_file_and_short_buffer)
{
	char path[PATH_MAX], got[8];

	in_tmp(path, "nope");
	cr_expect_eq(or_cgroup2_root(path, got, sizeof(got)), -ENOENT, "missing file");
	write_file("mountinfo", pure);
	in_tmp(path, "mountinfo");
	cr_expect_eq(or_cgroup2_root(path, got, sizeof(got)), -ENAMETOOLONG, "8-byte buffer");
}

Test(cgroup2_root, this_machine)
{
	char got[PATH_MAX];
	struct stat st;
	int err = or_cgroup2_root(NULL, got, sizeof(got));

	if (err == -ENOENT)
		cr_skip_test("no cgroup2 mount here");
	cr_assert_eq(err, 0, "or_cgroup2_root(NULL): %d", err);
	cr_assert_eq(stat(got, &st), 0, "stat %s: %s", got, strerror(errno));
	cr_expect(S_ISDIR(st.st_mode), "%s is a directory", got);
}

/* ---- pod directory ---- */

TestSuite(find_pod, .init = tmp_make, .fini = tmp_remove);

struct layout {
	const char *qos;
	const char *rel;
};

static const struct layout systemd_layouts[] = {
	{ "Guaranteed", "kubepods.slice/kubepods-pod" UID_ ".slice" },
	{ "Burstable", "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" UID_
		       ".slice" },
	{ "BestEffort", "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" UID_
			".slice" },
};

static const struct layout cgroupfs_layouts[] = {
	{ "Guaranteed", "kubepods/pod" UID },
	{ "Burstable", "kubepods/burstable/pod" UID },
	{ "BestEffort", "kubepods/besteffort/pod" UID },
};

/* Only `l` exists: found with its own QoS and with none, not with another class's. */
static void expect_found_only_as(const struct layout *l, const char *other_qos)
{
	char want[PATH_MAX], got[PATH_MAX];
	int err;

	tmp_remove();
	tmp_make();
	mkdirs(l->rel);
	in_tmp(want, l->rel);

	err = or_cgroup_find_pod(tmp, UID, l->qos, got, sizeof(got));
	cr_assert_eq(err, 0, "%s: %d", l->rel, err);
	cr_expect_str_eq(got, want, "%s with qos %s", l->rel, l->qos);

	err = or_cgroup_find_pod(tmp, UID, NULL, got, sizeof(got));
	cr_assert_eq(err, 0, "%s, qos NULL: %d", l->rel, err);
	cr_expect_str_eq(got, want, "%s with qos NULL", l->rel);

	err = or_cgroup_find_pod(tmp, UID, "SomethingNew", got, sizeof(got));
	cr_assert_eq(err, 0, "%s, unknown qos: %d", l->rel, err);
	cr_expect_str_eq(got, want, "%s with an unknown qos", l->rel);

	cr_expect_eq(or_cgroup_find_pod(tmp, UID, other_qos, got, sizeof(got)), -ENOENT,
		     "%s is not looked for as %s", l->rel, other_qos);
}

Test(find_pod, systemd_driver_all_qos_classes)
{
	expect_found_only_as(&systemd_layouts[0], "Burstable");
	expect_found_only_as(&systemd_layouts[1], "BestEffort");
	expect_found_only_as(&systemd_layouts[2], "Guaranteed");
}

Test(find_pod, cgroupfs_driver_all_qos_classes)
{
	expect_found_only_as(&cgroupfs_layouts[0], "BestEffort");
	expect_found_only_as(&cgroupfs_layouts[1], "Guaranteed");
	expect_found_only_as(&cgroupfs_layouts[2], "Burstable");
}

Test(find_pod, systemd_is_tried_first)
{
	char want[PATH_MAX], got[PATH_MAX];

	mkdirs(cgroupfs_layouts[1].rel);
	mkdirs(systemd_layouts[1].rel);
	in_tmp(want, systemd_layouts[1].rel);
	cr_assert_eq(or_cgroup_find_pod(tmp, UID, "Burstable", got, sizeof(got)), 0);
	cr_expect_str_eq(got, want);
}

Test(find_pod, missing_is_enoent)
{
	char got[PATH_MAX], other[PATH_MAX];

	cr_expect_eq(or_cgroup_find_pod(tmp, UID, NULL, got, sizeof(got)), -ENOENT, "empty root");
	mkdirs("kubepods.slice/kubepods-burstable.slice");
	mkdirs("kubepods/besteffort");
	cr_expect_eq(or_cgroup_find_pod(tmp, UID, NULL, got, sizeof(got)), -ENOENT,
		     "QoS levels but no pod");
	/* another pod's directory does not match */
	mkdirs("kubepods/besteffort/pod0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f1");
	cr_expect_eq(or_cgroup_find_pod(tmp, UID, NULL, got, sizeof(got)), -ENOENT,
		     "only another pod");
	/* a regular file where the directory would be is not the pod */
	write_file("kubepods/besteffort/pod" UID, "");
	cr_expect_eq(or_cgroup_find_pod(tmp, UID, NULL, got, sizeof(got)), -ENOENT,
		     "a file, not a directory");
	in_tmp(other, "does/not/exist");
	cr_expect_eq(or_cgroup_find_pod(other, UID, NULL, got, sizeof(got)), -ENOENT,
		     "missing root");
}

Test(find_pod, bad_uids_are_einval)
{
	static const char *const bad[] = {
		"",
		"0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f",	 /* 35 */
		"0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f00", /* 37 */
		"0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0",	 /* uppercase */
		"0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1g0",	 /* not hex */
		UID_,					 /* the systemd spelling */
		"0f1e2d3c4-b5a-6978-8796-a5b4c3d2e1f0",	 /* dash one late */
		"0f1e2d3c-4b5a-6978-8796a-5b4c3d2e1f0",	 /* last dash one late */
		"------------------------------------",
		"0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0/..", /* escape attempt */
		"../../../../../../../../../../../../",
		"0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f\n",
	};
	char got[PATH_MAX];

	/* make the good one findable so a -EINVAL can't be an -ENOENT in disguise */
	mkdirs(cgroupfs_layouts[0].rel);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_expect_eq(or_cgroup_find_pod(tmp, bad[i], NULL, got, sizeof(got)), -EINVAL,
			     "uid \"%s\"", bad[i]);
	cr_expect_eq(or_cgroup_find_pod(tmp, NULL, NULL, got, sizeof(got)), -EINVAL, "NULL uid");
	cr_expect_eq(or_cgroup_find_pod(tmp, UID, NULL, got, sizeof(got)), 0, "the good one");
}

Test(find_pod, short_buffer)
{
	char got[16];

	mkdirs(cgroupfs_layouts[2].rel);
	cr_expect_eq(or_cgroup_find_pod(tmp, UID, "BestEffort", got, sizeof(got)), -ENAMETOOLONG);
}

/* ---- a process of the pod ---- */

TestSuite(pod_pid, .init = tmp_make, .fini = tmp_remove);

static int pod_pid_of(const char *rel, pid_t *pid)
{
	char path[PATH_MAX];

	in_tmp(path, rel);
	*pid = -1;
	return or_cgroup_pod_pid(path, pid);
}

Test(pod_pid, empty_means_none)
{
	pid_t pid;

	mkdirs("pod/ctr-a");
	cr_expect_eq(pod_pid_of("pod", &pid), -ENOENT, "no cgroup.procs anywhere");
	write_file("pod/cgroup.procs", "");
	write_file("pod/ctr-a/cgroup.procs", "\n");
	cr_expect_eq(pod_pid_of("pod", &pid), -ENOENT, "empty cgroup.procs files");
	cr_expect_eq(pid, -1, "*pid untouched");
}

Test(pod_pid, first_of_several)
{
	pid_t pid;

	mkdirs("pod/ctr-a");
	write_file("pod/cgroup.procs", "4242\n17\n99\n");
	write_file("pod/ctr-a/cgroup.procs", "5\n");
	cr_assert_eq(pod_pid_of("pod", &pid), 0);
	cr_expect_eq(pid, 4242, "the pod's own cgroup.procs comes first");
}

Test(pod_pid, only_in_a_subdirectory)
{
	pid_t pid;

	mkdirs("pod/ctr-empty");
	mkdirs("pod/ctr-pause");
	write_file("pod/cgroup.procs", "");
	write_file("pod/ctr-empty/cgroup.procs", "");
	write_file("pod/ctr-pause/cgroup.procs", "31337\n31338\n");
	cr_assert_eq(pod_pid_of("pod", &pid), 0);
	cr_expect_eq(pid, 31337);
}

Test(pod_pid, depth_is_bounded)
{
	pid_t pid;

	mkdirs("pod/1/2/3/4/5");
	write_file("pod/1/2/3/4/5/cgroup.procs", "77\n");
	cr_expect_eq(pod_pid_of("pod", &pid), -ENOENT, "depth 5 is not searched");
	write_file("pod/1/2/3/4/cgroup.procs", "66\n");
	cr_assert_eq(pod_pid_of("pod", &pid), 0, "depth 4 is");
	cr_expect_eq(pid, 66);
}

Test(pod_pid, symlinks_are_not_followed)
{
	char target[PATH_MAX], link[PATH_MAX];
	pid_t pid;

	mkdirs("pod");
	mkdirs("elsewhere");
	write_file("elsewhere/cgroup.procs", "1234\n");
	in_tmp(target, "elsewhere");
	in_tmp(link, "pod/ctr-link");
	cr_assert_eq(symlink(target, link), 0, "symlink: %s", strerror(errno));
	cr_expect_eq(pod_pid_of("pod", &pid), -ENOENT);
}

Test(pod_pid, missing_dir_and_garbage)
{
	pid_t pid;

	cr_expect_eq(pod_pid_of("gone", &pid), -ENOENT, "missing pod directory");
	mkdirs("pod");
	write_file("pod/cgroup.procs", "abc\n");
	cr_expect_eq(pod_pid_of("pod", &pid), -EINVAL, "not a number");
	write_file("pod/cgroup.procs", "0\n");
	cr_expect_eq(pod_pid_of("pod", &pid), -EINVAL, "PID 0");
	write_file("pod/cgroup.procs", "12x\n");
	cr_expect_eq(pod_pid_of("pod", &pid), -EINVAL, "trailing junk");
	write_file("pod/cgroup.procs", "12");
	cr_expect_eq(pod_pid_of("pod", &pid), 0, "no newline");
	cr_expect_eq(pid, 12);
}

/* ---- netns path ---- */

Test(netns_path_of, formats_and_bounds)
{
	char buf[32];

	cr_assert_eq(or_netns_path_of(4242, buf, sizeof(buf)), 0);
	cr_expect_str_eq(buf, "/proc/4242/ns/net");
	cr_expect_eq(or_netns_path_of(4242, buf, 17), -ENAMETOOLONG, "needs 18 bytes");
	cr_expect_eq(or_netns_path_of(4242, buf, 18), 0, "18 bytes are enough");
	cr_expect_eq(or_netns_path_of(0, buf, sizeof(buf)), -EINVAL, "PID 0");
}

/* ---- the real cgroup2 mount, a real process ---- */

#define REAL_POD "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" UID_ ".slice"
#define REAL_CTR REAL_POD "/cri-containerd-0123abcd.scope"

/* Our own subtree, children first; nothing outside $CG2/outrider-test-<id> is touched. */
static const char *const real_dirs[] = {
	REAL_CTR,
	REAL_POD,
	"kubepods.slice/kubepods-burstable.slice",
	"kubepods.slice",
	"",
};

static char real_top[PATH_MAX];
static pid_t real_child = -1;

static void real_cleanup(void)
{
	char path[PATH_MAX];

	if (real_child > 0) {
		kill(real_child, SIGKILL);
		waitpid(real_child, NULL, 0);
		real_child = -1;
	}
	if (!real_top[0])
		return;
	for (size_t i = 0; i < sizeof(real_dirs) / sizeof(real_dirs[0]); i++) {
		if (snprintf(path, sizeof(path), "%s/%s", real_top, real_dirs[i]) >=
		    (int)sizeof(path))
			continue;
		/* a cgroup can stay busy for a moment after its last process is reaped */
		for (int tries = 0; tries < 100; tries++) {
			if (rmdir(path) == 0 || errno != EBUSY)
				break;
			nanosleep(&(struct timespec){ .tv_nsec = 10 * 1000 * 1000 }, NULL);
		}
	}
	real_top[0] = '\0';
}

TestSuite(real_cgroup, .fini = real_cleanup);

Test(real_cgroup, finds_a_moved_sleeping_process)
{
	char cg2[PATH_MAX], path[PATH_MAX], pod[PATH_MAX], pidtext[32];
	struct stat st;
	pid_t pid = -1;
	int fd, n;

	if (geteuid() != 0)
		cr_skip_test("needs root to make cgroups");
	if (or_cgroup2_root(NULL, cg2, sizeof(cg2)) != 0)
		cr_skip_test("no cgroup2 mount");
	cr_assert_lt(snprintf(real_top, sizeof(real_top), "%s/outrider-test-%06x", cg2,
			      (unsigned)(getpid() ^ time(NULL)) & 0xffffff),
		     (int)sizeof(real_top));
	if (mkdir(real_top, 0755) == -1) {
		int e = errno;

		real_top[0] = '\0';
		if (e == EACCES || e == EPERM || e == EROFS)
			cr_skip_test("cannot make cgroups under %s: %s", cg2, strerror(e));
		cr_assert_fail("mkdir under %s: %s", cg2, strerror(e));
	}
	for (int i = (int)(sizeof(real_dirs) / sizeof(real_dirs[0])) - 2; i >= 0; i--) {
		cr_assert_lt(snprintf(path, sizeof(path), "%s/%s", real_top, real_dirs[i]),
			     (int)sizeof(path));
		cr_assert_eq(mkdir(path, 0755), 0, "mkdir %s: %s", path, strerror(errno));
	}

	real_child = fork();
	cr_assert_neq(real_child, -1, "fork: %s", strerror(errno));
	if (real_child == 0) {
		execl("/bin/sleep", "sleep", "60", (char *)NULL);
		_exit(127);
	}

	cr_assert_lt(snprintf(path, sizeof(path), "%s/%s/cgroup.procs", real_top, REAL_CTR),
		     (int)sizeof(path));
	fd = open(path, O_WRONLY | O_CLOEXEC);
	cr_assert_neq(fd, -1, "open %s: %s", path, strerror(errno));
	n = snprintf(pidtext, sizeof(pidtext), "%d\n", (int)real_child);
	cr_assert_eq(write(fd, pidtext, n), n, "move %d into %s: %s", (int)real_child, path,
		     strerror(errno));
	close(fd);

	cr_assert_eq(or_cgroup_find_pod(real_top, UID, "Burstable", pod, sizeof(pod)), 0);
	cr_assert_lt(snprintf(path, sizeof(path), "%s/%s", real_top, REAL_POD), (int)sizeof(path));
	cr_expect_str_eq(pod, path);
	cr_assert_eq(or_cgroup_find_pod(real_top, UID, NULL, pod, sizeof(pod)), 0, "qos NULL");
	cr_assert_eq(or_cgroup_pod_pid(pod, &pid), 0, "a PID in %s", pod);
	cr_expect_eq(pid, real_child, "found %d, started %d", (int)pid, (int)real_child);

	cr_assert_eq(or_netns_path_of(pid, path, sizeof(path)), 0);
	cr_expect_eq(stat(path, &st), 0, "stat %s: %s", path, strerror(errno));

	/* once it is gone the pod has no process: -ENOENT, to be retried */
	kill(real_child, SIGKILL);
	waitpid(real_child, NULL, 0);
	real_child = -1;
	cr_expect_eq(or_cgroup_pod_pid(pod, &pid), -ENOENT, "after the process exited");
}
