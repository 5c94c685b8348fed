// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Pod UID -> cgroup v2 directory -> a PID -> its netns path. Nothing here
 * keeps state: every call looks at the filesystem as it is now, so a pod
 * that is still starting is simply -ENOENT and the caller asks again later.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cgroup_find.h"

#define OR_UID_LEN 36
/* Below the pod directory: container cgroups sit at depth 1, nested ones rarely deeper. */
#define OR_POD_MAX_DEPTH 4

void or_mountinfo_unescape(char *s)
{
	char *out = s;

	while (*s) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*out++ = (char)((s[1] - '0') << 6 | (s[2] - '0') << 3 | (s[3] - '0'));
			s += 4;
		} else {
			*out++ = *s++;
		}
	}
	*out = '\0';
}

/*
 * One mountinfo line: "id parent maj:min root mountpoint opts [optional...] - fstype src sopts".
 * Returns the mount point (inside line, unescaped) if the type is cgroup2, else NULL.
 */
static char *cgroup2_mount_of(char *line)
{
	char *save = NULL, *mnt = NULL, *tok;
	int field = 0;

	line[strcspn(line, "\n")] = '\0';
	for (tok = strtok_r(line, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		field++;
		if (field == 5)
			mnt = tok;
		/* The separator can only follow the options (field 6). */
		if (field > 6 && strcmp(tok, "-") == 0) {
			tok = strtok_r(NULL, " ", &save);
			if (!mnt || !tok || strcmp(tok, "cgroup2") != 0)
				return NULL;
			or_mountinfo_unescape(mnt);
			return mnt;
		}
	}
	return NULL;
}

int or_cgroup2_root(const char *mountinfo_path, char *buf, size_t len)
{
	char *line = NULL, *mnt;
	size_t cap = 0;
	int err = -ENOENT;
	FILE *f;

	f = fopen(mountinfo_path ? mountinfo_path : "/proc/self/mountinfo", "re");
	if (!f)
		return -errno;
	while (getline(&line, &cap, f) != -1) {
		mnt = cgroup2_mount_of(line);
		if (!mnt)
			continue;
		if (strlen(mnt) >= len) {
			err = -ENAMETOOLONG;
			goto out_free;
		}
		strcpy(buf, mnt);
		err = 0;
		goto out_free;
	}
out_free:
	free(line);
	fclose(f);
	return err;
}

/* A Kubernetes UID as kubelet names cgroups after it: 8-4-4-4-12 lowercase hex. */
static bool uid_valid(const char *uid)
{
	if (!uid || strnlen(uid, OR_UID_LEN + 1) != OR_UID_LEN)
		return false;
	for (int i = 0; i < OR_UID_LEN; i++) {
		bool dash_pos = i == 8 || i == 13 || i == 18 || i == 23;
		char c = uid[i];

		if (dash_pos) {
			if (c != '-')
				return false;
		} else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
			return false;
		}
	}
	return true;
}

enum qos_class { QOS_GUARANTEED, QOS_BURSTABLE, QOS_BESTEFFORT, QOS_NR };

/* kubelet's lowercase spelling; Guaranteed pods have no QoS level of their own. */
static const char *const qos_dir[QOS_NR] = {
	[QOS_GUARANTEED] = NULL,
	[QOS_BURSTABLE] = "burstable",
	[QOS_BESTEFFORT] = "besteffort",
};

static int qos_parse(const char *qos)
{
	if (!qos)
		return -1;
	if (strcmp(qos, "Guaranteed") == 0)
		return QOS_GUARANTEED;
	if (strcmp(qos, "Burstable") == 0)
		return QOS_BURSTABLE;
	if (strcmp(qos, "BestEffort") == 0)
		return QOS_BESTEFFORT;
	return -1;
}

/* Formats one candidate; -ENAMETOOLONG if it does not fit in PATH_MAX. */
static int candidate(char *out, const char *root, const char *uid, bool systemd, int qos)
{
	char uid_[OR_UID_LEN + 1];
	const char *q = qos_dir[qos];
	int n;

	if (systemd) {
		for (int i = 0; i <= OR_UID_LEN; i++)
			uid_[i] = uid[i] == '-' ? '_' : uid[i];
		if (q)
			n = snprintf(out, PATH_MAX,
				     "%s/kubepods.slice/kubepods-%s.slice/kubepods-%s-pod%s.slice",
				     root, q, q, uid_);
		else
			n = snprintf(out, PATH_MAX, "%s/kubepods.slice/kubepods-pod%s.slice",
				     root, uid_);
	} else {
		if (q)
			n = snprintf(out, PATH_MAX, "%s/kubepods/%s/pod%s", root, q, uid);
		else
			n = snprintf(out, PATH_MAX, "%s/kubepods/pod%s", root, uid);
	}
	return n < 0 || n >= PATH_MAX ? -ENAMETOOLONG : 0;
}

int or_cgroup_find_pod(const char *root, const char *uid, const char *qos, char *buf,
		       size_t len)
{
	static const bool drivers[] = { true, false }; /* systemd first: kubelet's default */
	int want = qos_parse(qos);
	char path[PATH_MAX];
	struct stat st;
	int err;

	if (!root || !buf || !uid_valid(uid))
		return -EINVAL;
	for (size_t d = 0; d < sizeof(drivers) / sizeof(drivers[0]); d++) {
		for (int q = 0; q < QOS_NR; q++) {
			if (want >= 0 && q != want)
				continue;
			err = candidate(path, root, uid, drivers[d], q);
			if (err)
				return err;
			if (stat(path, &st) == -1 || !S_ISDIR(st.st_mode))
				continue;
			if (strlen(path) >= len)
				return -ENAMETOOLONG;
			strcpy(buf, path);
			return 0;
		}
	}
	return -ENOENT;
}

/*
 * The first PID in dirfd's cgroup.procs: 0 and *pid, -ENOENT when the file is
 * missing or empty (or the cgroup went away under us: ENODEV), else -errno.
 */
static int first_pid_at(int dirfd, pid_t *pid)
{
	char text[64], *end;
	ssize_t n;
	long v;
	int fd, err;

	fd = openat(dirfd, "cgroup.procs", O_RDONLY | O_CLOEXEC);
	if (fd == -1)
		return errno == ENODEV ? -ENOENT : -errno;
	/* The first line is enough; a PID is at most 7 digits on Linux. */
	n = read(fd, text, sizeof(text) - 1);
	if (n == -1) {
		err = errno == ENODEV ? -ENOENT : -errno;
		goto out_close;
	}
	text[n] = '\0';
	if (text[strspn(text, " \t\n")] == '\0') {
		err = -ENOENT;
		goto out_close;
	}
	errno = 0;
	v = strtol(text, &end, 10);
	if (errno || end == text || (*end != '\n' && *end != '\0') || v <= 0 || v > INT_MAX) {
		err = -EINVAL;
		goto out_close;
	}
	*pid = (pid_t)v;
	err = 0;
out_close:
	close(fd);
	return err;
}

/* dirfd (owned: closed here) then its subdirectories, depth first, down to max_depth. */
static int pod_pid_walk(int dirfd, int depth, pid_t *pid)
{
	struct dirent *de;
	int err, sub;
	DIR *dir;

	err = first_pid_at(dirfd, pid);
	if (err != -ENOENT || depth >= OR_POD_MAX_DEPTH) {
		close(dirfd);
		return err;
	}
	dir = fdopendir(dirfd);
	if (!dir) {
		err = -errno;
		close(dirfd);
		return err;
	}
	err = -ENOENT;
	while ((de = readdir(dir))) {
		if (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN)
			continue;
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		sub = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		/* not a directory, or removed since readdir: not ours to report */
		if (sub == -1)
			continue;
		err = pod_pid_walk(sub, depth + 1, pid);
		if (err != -ENOENT)
			break;
	}
	closedir(dir);
	return err;
}

int or_cgroup_pod_pid(const char *pod_dir, pid_t *pid)
{
	int fd;

	if (!pod_dir || !pid)
		return -EINVAL;
	fd = open(pod_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd == -1)
		return -errno;
	return pod_pid_walk(fd, 0, pid);
}

int or_netns_path_of(pid_t pid, char *buf, size_t len)
{
	int n;

	if (pid <= 0)
		return -EINVAL;
	n = snprintf(buf, len, "/proc/%d/ns/net", (int)pid);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}
