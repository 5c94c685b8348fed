#!/bin/sh
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# Traffic capture for a sidecar proxy, as Istio's istio-init sets it up: run
# inside the pod's network namespace (an init container with NET_ADMIN, or
# `ip netns exec POD` / `nsenter --net=...` on a test machine).
#
#   outrider-iptables.sh install    add the rules (replacing ours if present)
#   outrider-iptables.sh remove     remove exactly what install added
#   outrider-iptables.sh show       print our chains
#
# nat OUTPUT -> OUTRIDER_OUTPUT, for TCP the pod's apps open:
#   from the proxy's uid (PROXY_UID)  RETURN  (its own upstream connections)
#   to 127.0.0.0/8                    RETURN  (loopback stays loopback)
#   everything else                   REDIRECT to OUTBOUND_PORT (15001)
# nat PREROUTING -> OUTRIDER_INBOUND, for TCP arriving at the pod:
#   to TUNNEL_PORT (15008)            RETURN  (outrider's mTLS tunnel listener)
#   to OUTBOUND_PORT, INBOUND_PORT    RETURN
#   everything else                   REDIRECT to INBOUND_PORT (15006)
# The proxy finds where a connection was going with SO_ORIGINAL_DST.
#
# Environment: PROXY_UID (1337), OUTBOUND_PORT (15001), INBOUND_PORT
# (15006), TUNNEL_PORT (15008), IPTABLES (iptables; ip6tables for IPv6).
# Rules live in their own chains, so `remove` leaves every other rule of
# the namespace alone; deleting the namespace removes them too.
set -eu

PROXY_UID=${PROXY_UID:-1337}
OUTBOUND_PORT=${OUTBOUND_PORT:-15001}
INBOUND_PORT=${INBOUND_PORT:-15006}
TUNNEL_PORT=${TUNNEL_PORT:-15008}
IPTABLES=${IPTABLES:-iptables}
case "$IPTABLES" in
*ip6tables*) LOOPBACK=::1/128 ;;
*) LOOPBACK=127.0.0.0/8 ;;
esac

ipt() { "$IPTABLES" -w -t nat "$@"; }

remove()
{
	# Each step may find nothing to do: remove is safe to run twice.
	while ipt -D OUTPUT -p tcp -j OUTRIDER_OUTPUT 2>/dev/null; do :; done
	while ipt -D PREROUTING -p tcp -j OUTRIDER_INBOUND 2>/dev/null; do :; done
	for chain in OUTRIDER_OUTPUT OUTRIDER_INBOUND; do
		if ipt -n -L "$chain" >/dev/null 2>&1; then
			ipt -F "$chain"
			ipt -X "$chain"
		fi
	done
}

install()
{
	remove
	ipt -N OUTRIDER_OUTPUT
	ipt -A OUTRIDER_OUTPUT -p tcp -m owner --uid-owner "$PROXY_UID" -j RETURN
	ipt -A OUTRIDER_OUTPUT -p tcp -d "$LOOPBACK" -j RETURN
	ipt -A OUTRIDER_OUTPUT -p tcp -j REDIRECT --to-ports "$OUTBOUND_PORT"

	ipt -N OUTRIDER_INBOUND
	ipt -A OUTRIDER_INBOUND -p tcp --dport "$TUNNEL_PORT" -j RETURN
	ipt -A OUTRIDER_INBOUND -p tcp --dport "$OUTBOUND_PORT" -j RETURN
	ipt -A OUTRIDER_INBOUND -p tcp --dport "$INBOUND_PORT" -j RETURN
	ipt -A OUTRIDER_INBOUND -p tcp -j REDIRECT --to-ports "$INBOUND_PORT"

	# The jumps last: no connection meets a half-built chain.
	ipt -A OUTPUT -p tcp -j OUTRIDER_OUTPUT
	ipt -A PREROUTING -p tcp -j OUTRIDER_INBOUND
}

show()
{
	ipt -S OUTRIDER_OUTPUT 2>/dev/null || true
	ipt -S OUTRIDER_INBOUND 2>/dev/null || true
}

case "${1:-}" in
install) install ;;
remove) remove ;;
show) show ;;
*)
	echo "usage: $0 install|remove|show (inside the pod's network namespace)" >&2
	exit 2
	;;
esac
