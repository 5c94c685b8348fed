/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * logfmt logging: `ts=... level=info msg="pod enrolled" pod=default/client`.
 * Callers pass the message and then logfmt pairs as a printf format:
 *   or_info("pod enrolled", "pod=%s/%s ip=%s", ns, name, ip);
 */
#ifndef OR_LOG_H
#define OR_LOG_H

#include <stdarg.h>
#include <bpf/libbpf.h>

enum or_log_level { OR_LOG_DEBUG, OR_LOG_INFO, OR_LOG_WARN, OR_LOG_ERROR };

/* Returns 0, or -EINVAL for a name other than debug|info|warn|error. */
int or_log_set_level(const char *name);
void or_log_set_level_num(enum or_log_level level);
int or_log_enabled(enum or_log_level level);

__attribute__((format(printf, 3, 4))) void or_log(enum or_log_level level, const char *msg,
						  const char *fmt, ...);

#define or_debug(msg, ...) or_log(OR_LOG_DEBUG, msg, __VA_ARGS__)
#define or_info(msg, ...) or_log(OR_LOG_INFO, msg, __VA_ARGS__)
#define or_warn(msg, ...) or_log(OR_LOG_WARN, msg, __VA_ARGS__)
#define or_error(msg, ...) or_log(OR_LOG_ERROR, msg, __VA_ARGS__)

/* libbpf's own messages, routed through or_log (for libbpf_set_print). */
int or_log_libbpf(enum libbpf_print_level level, const char *fmt, va_list ap);

#endif
