#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# One load of tests/soak/soak.sh. Runs inside the client pod (pod_spawn: its
# netns and cgroup, build/ on PATH) in rounds, until END (epoch seconds) or
# until the file STOP exists:
#
#   load.sh wrk URL END STOP          wrk -t1 -c$SOAK_WRK_CONNS, keep-alive,
#                                     rounds of $SOAK_CHUNK s, paced by pace.lua
#                                     ($SOAK_WRK_DELAY_MS between requests)
#   load.sh curl URL END STOP         curl: a new connection per request
#                                     (Connection: close), $SOAK_NC_RATE a second
#   load.sh stream HOST PORT END STOP orclient --send, 64 KiB, 1 MiB, 4 MiB in
#                                     turn, every byte checked, $SOAK_L4_PAUSE s apart
#
# After each round, on stdout: "ok=N err=M" (requests or streams that
# completed, and those that failed: wrk's non-2xx answers and socket errors,
# curl's non-2xx codes and failures, a stream that did not come back whole).
# Anything else it prints starts with "#". SIGTERM ends the tool it is waiting
# for, then itself, so nothing of it is left in the pod's cgroup.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
CHILD=
OUT=$(mktemp) || exit 1
trap 'rm -f "$OUT"' EXIT
trap '[ -z "$CHILD" ] || kill -TERM "$CHILD" 2>/dev/null; exit 0' TERM INT

# run CMD...: CMD in the background, waited for, so SIGTERM is handled at once.
run()
{
	"$@" &
	CHILD=$!
	wait "$CHILD"
	local rc=$?
	CHILD=
	return $rc
}

# left: whole seconds until END; 0 once STOP exists.
left()
{
	local now=${EPOCHREALTIME%[.,]*}
	if [ -e "$STOP" ] || [ "$now" -ge "$END" ]; then
		echo 0
	else
		echo $((END - now))
	fi
}

load_wrk()
{
	local url=$1 d
	while d=$(left) && [ "$d" -gt 0 ]; do
		[ "$d" -le "${SOAK_CHUNK:-15}" ] || d=${SOAK_CHUNK:-15}
		run wrk -t1 -c"${SOAK_WRK_CONNS:-8}" -d"${d}s" --timeout 5s -s "$HERE/pace.lua" "$url" \
			>"$OUT" 2>&1
		awk '
			/ requests in / { n = $1 }
			/Non-2xx or 3xx responses:/ { bad += $NF }
			/Socket errors:/ {
				for (i = 3; i <= NF; i++) { v = $i; sub(/,$/, "", v); if (v ~ /^[0-9]+$/) sock += v }
			}
			END {
				if (n == "") { print "# wrk gave no summary"; print "ok=0 err=1"; exit }
				printf "ok=%d err=%d\n", n - bad, bad + sock
			}' "$OUT"
	done
}

load_curl()
{
	local url=$1 d n rate=${SOAK_NC_RATE:-20}
	while d=$(left) && [ "$d" -gt 0 ]; do
		[ "$d" -le "${SOAK_CHUNK:-15}" ] || d=${SOAK_CHUNK:-15}
		n=$((rate * d))
		# One curl for the round: [1-n] is a URL glob, one request each;
		# "Connection: close" makes every one a new connection. A failed
		# request prints 000 and curl goes on with the next.
		run curl -sS -o /dev/null -w '%{http_code}\n' --max-time 5 --rate "$rate/s" \
			-H 'Connection: close' "$url/soak/[1-$n]" >"$OUT" 2>/dev/null
		awk '/^2/ { ok++; next } { err++ } END { printf "ok=%d err=%d\n", ok, err }' "$OUT"
	done
}

load_stream()
{
	local host=$1 port=$2 i=0 size
	local -a sizes=(64K 1M 4M)
	while [ "$(left)" -gt 0 ]; do
		size=${sizes[i % 3]}
		i=$((i + 1))
		if run orclient "$host" "$port" --send "$size" --timeout-ms 5000 >/dev/null 2>&1; then
			echo "ok=1 err=0"
		else
			echo "ok=0 err=1"
		fi
		run sleep "${SOAK_L4_PAUSE:-0.2}"
	done
}

kind=${1:-}
case "$kind" in
wrk | curl)
	[ $# -eq 4 ] || { echo "usage: $0 $kind URL END STOP" >&2; exit 2; }
	END=$3 STOP=$4
	"load_$kind" "$2"
	;;
stream)
	[ $# -eq 5 ] || { echo "usage: $0 stream HOST PORT END STOP" >&2; exit 2; }
	END=$4 STOP=$5
	load_stream "$2" "$3"
	;;
*)
	echo "usage: $0 wrk|curl URL END STOP | stream HOST PORT END STOP" >&2
	exit 2
	;;
esac
