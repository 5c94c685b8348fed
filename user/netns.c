// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <stdbool.h>
#include <unistd.h>

#include "log.h"
#include "netns.h"

static int host_netns_fd = -1;
static __thread bool entered; /* this thread is in a pod's netns */

int or_netns_init(void)
{
	host_netns_fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (host_netns_fd == -1)
		return -errno;
	return 0;
}

void or_netns_fini(void)
{
	if (host_netns_fd != -1)
		close(host_netns_fd);
	host_netns_fd = -1;
}

int or_netns_open(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	return fd == -1 ? -errno : fd;
}

int or_netns_enter(int netns_fd)
{
	if (netns_fd == -1)
		return 0;
	if (setns(netns_fd, CLONE_NEWNET) == -1)
		return -errno;
	entered = true;
	return 0;
}

int or_netns_leave(void)
{
	if (!entered)
		return 0;
	entered = false;
	if (setns(host_netns_fd, CLONE_NEWNET) == -1) {
		/* A thread stuck in a pod's netns would open sockets there: stop. */
		or_error("cannot return to the agent netns", "errno=%d", errno);
		abort();
	}
	return 0;
}
