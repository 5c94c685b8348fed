// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "addr.h"

int or_ip_parse(const char *s, struct or_ip *out)
{
	memset(out, 0, sizeof(*out));
	if (!s)
		return -EINVAL;
	if (inet_pton(AF_INET, s, &out->v4) == 1) {
		out->family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, s, &out->v6) == 1) {
		out->family = AF_INET6;
		return 0;
	}
	return -EINVAL;
}

const char *or_ip_str(const struct or_ip *ip, char *buf, size_t len)
{
	if (!ip->family || !inet_ntop(ip->family, &ip->v6, buf, len))
		snprintf(buf, len, "-");
	return buf;
}

bool or_ip_eq(const struct or_ip *a, const struct or_ip *b)
{
	if (a->family != b->family)
		return false;
	if (a->family == AF_INET)
		return a->v4.s_addr == b->v4.s_addr;
	if (a->family == AF_INET6)
		return memcmp(&a->v6, &b->v6, sizeof(a->v6)) == 0;
	return true;
}

void or_ip_to_abi(const struct or_ip *ip, uint32_t out[4])
{
	memset(out, 0, 16);
	if (ip->family == AF_INET)
		out[0] = ip->v4.s_addr;
	else if (ip->family == AF_INET6)
		memcpy(out, &ip->v6, 16);
}

void or_ip_from_abi(int family, const uint32_t in[4], struct or_ip *out)
{
	memset(out, 0, sizeof(*out));
	out->family = family;
	if (family == AF_INET)
		out->v4.s_addr = in[0];
	else if (family == AF_INET6)
		memcpy(&out->v6, in, 16);
}

socklen_t or_ip_sockaddr(const struct or_ip *ip, uint16_t port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (ip->family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		sin->sin_addr = ip->v4;
		return sizeof(*sin);
	}
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons(port);
	sin6->sin6_addr = ip->v6;
	return sizeof(*sin6);
}

int or_ip_from_sockaddr(const struct sockaddr_storage *ss, struct or_ip *ip, uint16_t *port)
{
	memset(ip, 0, sizeof(*ip));
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;

		ip->family = AF_INET;
		ip->v4 = sin->sin_addr;
		*port = ntohs(sin->sin_port);
		return 0;
	}
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;

		*port = ntohs(sin6->sin6_port);
		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
			ip->family = AF_INET;
			memcpy(&ip->v4, &sin6->sin6_addr.s6_addr[12], 4);
		} else {
			ip->family = AF_INET6;
			ip->v6 = sin6->sin6_addr;
		}
		return 0;
	}
	return -EAFNOSUPPORT;
}
