#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# Installs the Debian packages outrider needs to build, test, demo and
# benchmark, and mounts bpffs. Idempotent: installs only what is missing,
# and touches apt not at all when nothing is. Debian 12, as root.
set -euo pipefail

PACKAGES=(
	clang llvm libbpf-dev bpftool libelf-dev zlib1g-dev libssl-dev libyaml-dev
	libjson-c-dev libcurl4-openssl-dev libcriterion-dev libhttp-parser-dev bats jq curl socat wrk iproute2 iperf3
	gnuplot-nox
	make gcc libc6-dev pkg-config python3 python3-yaml
	openssl tcpdump # the mTLS tests: s_client, minting test SVIDs, captures
	nftables # the fault tests: packets dropped inside a pod's netns
	iptables haproxy # sidecar mode (iptables REDIRECT) and the reference sidecar in the benchmark
)

installed()
{
	[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
}

missing=()
for p in "${PACKAGES[@]}"; do
	installed "$p" || missing+=("$p")
done

# libFuzzer's runtime ships apart from clang (a Recommends, which
# --no-install-recommends skips): libclang-rt-<major>-dev.
clang_rt()
{
	local major
	major=$(clang --version 2>/dev/null | sed -n 's/.*clang version \([0-9]*\).*/\1/p' | head -n1)
	[ -n "$major" ] && echo "libclang-rt-$major-dev"
}

apt_install()
{
	if [ "$(id -u)" != 0 ]; then
		echo "deps.sh: missing packages: $*; run as root to install them" >&2
		exit 1
	fi
	echo "deps.sh: installing $*"
	export DEBIAN_FRONTEND=noninteractive
	if [ -z "${OR_APT_UPDATED:-}" ]; then
		apt-get update
		OR_APT_UPDATED=1
	fi
	apt-get install -y --no-install-recommends "$@"
}

if [ "${#missing[@]}" -gt 0 ]; then
	apt_install "${missing[@]}"
fi

# After clang is installed, so that its version is known.
rt=$(clang_rt || true)
if [ -n "$rt" ] && ! installed "$rt"; then
	if apt-cache show "$rt" >/dev/null 2>&1; then
		apt_install "$rt"
	else
		echo "deps.sh: $rt is not available; the fuzz targets may not link" >&2
	fi
fi

# bpffs for pinned maps and links.
if [ "$(stat -f -c %T /sys/fs/bpf 2>/dev/null)" != bpf_fs ]; then
	if [ "$(id -u)" = 0 ]; then
		mkdir -p /sys/fs/bpf
		mount -t bpf bpf /sys/fs/bpf
		echo "deps.sh: mounted bpffs at /sys/fs/bpf"
	else
		echo "deps.sh: bpffs is not mounted at /sys/fs/bpf (needs root)" >&2
	fi
fi
