/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Reading outrider's pinned maps from outside the agent: open a pin by name,
 * check that its layout is the one include/or_abi.h describes, copy a whole
 * hash map out, sum a per-CPU counter, and format ABI addresses and names.
 * Only needs the pins under the pin directory, not a running agent; the
 * agent's /metrics uses the same readers on its own map fds.
 */
#ifndef OR_PINNED_H
#define OR_PINNED_H

#include <linux/types.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>

#include "or_abi.h"

/* A map's shape as the kernel reports it (value_size is per CPU for per-CPU maps). */
struct or_map_layout {
	__u32 type; /* enum bpf_map_type */
	__u32 key_size;
	__u32 value_size;
	__u32 max_entries;
};

/*
 * Unpins every pin in dir, then every pin in its subdirectories, and removes
 * them and dir: a link whose pin goes (and that no process holds) detaches.
 * Returns how many pins went.
 */
int or_pinned_remove_dir(const char *dir);

/* "<pin_dir>/<map>" into buf; -ENAMETOOLONG if it does not fit. */
int or_pinned_path(const char *pin_dir, const char *map, char *buf, size_t len);

/*
 * Opens the pin "<pin_dir>/<map>". On success *fd is a map fd the caller owns
 * and closes. Returns 0 or -errno (-ENOENT: no such pin).
 */
int or_pinned_open(const char *pin_dir, const char *map, int *fd);

/* Fills *out from the kernel's view of the map behind fd. Returns 0 or -errno. */
int or_pinned_layout(int fd, struct or_map_layout *out);

/*
 * The layout or_abi.h/maps.h give the map named map (max_entries 0: any),
 * or NULL for a name outrider does not pin.
 */
const struct or_map_layout *or_pinned_abi_layout(const char *map);

/*
 * Checks the map behind fd against or_pinned_abi_layout(map): type, key and
 * value size. *got (may be NULL) receives what the kernel reported.
 * Returns 0, -EPROTO on a mismatch, -ENOENT for an unknown name, or -errno.
 */
int or_pinned_check(int fd, const char *map, struct or_map_layout *got);

/*
 * Copies every entry of a hash map into one array of records, each rec_size
 * bytes, with the key at offset 0 and the value at val_off, e.g.
 *   struct row { struct or_svc_key k; struct or_svc_val v; };
 *   or_pinned_collect(fd, sizeof(r->k), sizeof(r->v), sizeof(*r),
 *                     offsetof(struct row, v), (void **)&rows, &n);
 * Entries deleted while walking are skipped. On success *recs (NULL when the
 * map is empty) belongs to the caller, who frees it. Returns 0, -EAGAIN if
 * the map kept changing under the walk, or -errno.
 */
int or_pinned_collect(int fd, size_t key_size, size_t val_size, size_t rec_size, size_t val_off,
		      void **recs, size_t *n);

/* Sum over all possible CPUs of a per-CPU __u64 at key. Returns 0 or -errno. */
int or_pinned_percpu_sum(int fd, __u32 key, __u64 *sum);

/* Lower-case name of an or_reason ("kernel_balanced"), or NULL past OR_REASON_MAX. */
const char *or_reason_name(unsigned int reason);

/*
 * Name of or_tls_counters.failures[i]: "tls" for 0 (other TLS errors), the
 * enum or_svid_err name for i >= 1 ("no_cert", "chain", ...), or NULL for a
 * slot no reason uses yet (i < OR_TLS_REASONS) or past the array.
 */
const char *or_tls_reason_name(unsigned int i);

/* "permissive", "strict", or "unknown" (enum or_inbound_mode). */
const char *or_inbound_mode_name(__u8 mode);

/* "proxy", "kernel", or "unknown". */
const char *or_svc_mode_name(__u8 mode);

/* "closed", "open", "half-open", or "unknown". */
const char *or_breaker_state_name(__u8 state);

/*
 * How long the endpoint stays ejected after now_ns (CLOCK_MONOTONIC, like
 * until_ns), or 0 when it is not ejected. The kernel's rule: state OPEN and
 * until_ns still ahead.
 */
__u64 or_breaker_remaining_ns(const struct or_breaker_val *v, __u64 now_ns);

/* "tcp", "udp", or NULL for another protocol number. */
const char *or_proto_name(__u8 proto);

/* Longest text an ABI address with port formats to: "[v6]:65535". */
#define OR_ABI_ADDR_STRLEN (INET6_ADDRSTRLEN + 8)

/*
 * An ABI address (OR_AF_INET in word 0, or OR_AF_INET6) as text into buf
 * (at least OR_ABI_ADDR_STRLEN): "10.0.0.1", "fd00::1"; with brackets
 * "[fd00::1]" when bracket_v6; "-" for an unknown family. Returns buf.
 */
const char *or_abi_ip_str(__u8 family, const __u32 addr[4], bool bracket_v6, char *buf,
			  size_t len);

/* "10.0.0.1:80" or "[fd00::1]:80" into buf (at least OR_ABI_ADDR_STRLEN). Returns buf. */
const char *or_abi_addr_str(__u8 family, const __u32 addr[4], __u16 port, char *buf, size_t len);

/* True when all 16 address bytes are zero. */
bool or_abi_addr_is_zero(const __u32 addr[4]);

/*
 * Length of a name field from a map value: up to the first NUL, at most
 * OR_NAME_LEN. The bytes come from whoever wrote the map: treat as untrusted.
 */
size_t or_abi_name_len(const char name[OR_NAME_LEN]);

/*
 * A name field made safe for a terminal into buf (at least OR_NAME_LEN + 1):
 * bytes outside printable ASCII become '?', an empty name becomes "-".
 * Returns buf.
 */
const char *or_abi_name_str(const char name[OR_NAME_LEN], char *buf, size_t len);

/* or_abi_name_len() for a SPIFFE ID field: at most OR_ID_LEN, may lack its NUL. */
size_t or_abi_id_len(const char id[OR_ID_LEN]);

/*
 * or_abi_name_str() for a SPIFFE ID field, into buf (at least OR_ID_LEN + 1):
 * "-" when empty (no SVID). Returns buf.
 */
const char *or_abi_id_str(const char id[OR_ID_LEN], char *buf, size_t len);

#endif
