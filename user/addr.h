/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* IPv4/IPv6 addresses as outrider passes them around, and their ABI form. */
#ifndef OR_ADDR_H
#define OR_ADDR_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct or_ip {
	int family; /* AF_INET, AF_INET6, or 0 when unset */
	union {
		struct in_addr v4;
		struct in6_addr v6;
	};
};

#define OR_IP_STRLEN INET6_ADDRSTRLEN

/* Parses a literal IPv4 or IPv6 address. Returns 0 or -EINVAL. */
int or_ip_parse(const char *s, struct or_ip *out);
/* Formats into buf (at least OR_IP_STRLEN); returns buf. "-" when unset. */
const char *or_ip_str(const struct or_ip *ip, char *buf, size_t len);
bool or_ip_eq(const struct or_ip *a, const struct or_ip *b);

/* The 16-byte ABI form (IPv4 in word 0), and back. */
void or_ip_to_abi(const struct or_ip *ip, uint32_t out[4]);
void or_ip_from_abi(int family, const uint32_t in[4], struct or_ip *out);

/* A sockaddr for ip:port (port in host order); returns its length. */
socklen_t or_ip_sockaddr(const struct or_ip *ip, uint16_t port, struct sockaddr_storage *ss);
/*
 * And back: ip and port (host order) of an AF_INET/AF_INET6 sockaddr; a
 * v4-mapped IPv6 address comes back as IPv4. 0 or -EAFNOSUPPORT.
 */
int or_ip_from_sockaddr(const struct sockaddr_storage *ss, struct or_ip *ip, uint16_t *port);

#endif
