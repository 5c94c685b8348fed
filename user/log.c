// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <bpf/libbpf.h>

#include "log.h"

static enum or_log_level min_level = OR_LOG_INFO;
static const char *const names[] = { "debug", "info", "warn", "error" };

int or_log_set_level(const char *name)
{
	for (unsigned int i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(name, names[i]) == 0) {
			min_level = i;
			return 0;
		}
	}
	return -EINVAL;
}

void or_log_set_level_num(enum or_log_level level)
{
	min_level = level;
}

int or_log_enabled(enum or_log_level level)
{
	return level >= min_level;
}

void or_log(enum or_log_level level, const char *msg, const char *fmt, ...)
{
	char line[2048], ts[40];
	struct timespec now;
	struct tm tm;
	va_list ap;
	int n;

	if (level < min_level)
		return;
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	n = snprintf(line, sizeof(line), "ts=%s.%03ldZ level=%s msg=\"%s\"", ts,
		     now.tv_nsec / 1000000, names[level], msg);
	if (fmt && fmt[0] && n > 0 && (size_t)n < sizeof(line) - 1) {
		line[n++] = ' ';
		va_start(ap, fmt);
		vsnprintf(line + n, sizeof(line) - n, fmt, ap);
		va_end(ap);
	}
	/* One write per line so lines from several threads do not interleave. */
	fprintf(stderr, "%s\n", line);
}

int or_log_libbpf(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	enum or_log_level lv = level == LIBBPF_WARN ? OR_LOG_WARN : OR_LOG_DEBUG;
	char buf[1024];
	size_t len;

	/* libbpf's DEBUG level is relocation detail: too much even for ours. */
	if (level == LIBBPF_DEBUG || !or_log_enabled(lv))
		return 0;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	len = strlen(buf);
	while (len && buf[len - 1] == '\n')
		buf[--len] = 0;
	for (char *p = buf; *p; p++)
		if (*p == '"')
			*p = '\'';
	or_log(lv, "libbpf", "detail=\"%s\"", buf);
	return 0;
}
