-- SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
--
-- wrk script of tests/soak/soak.sh: each connection waits SOAK_WRK_DELAY_MS
-- (default 10) after an answer before its next request. A soak wants a steady
-- load it can keep up for ten minutes next to everything else, not wrk's
-- flat-out rate, which would starve the other loads and the sampling of two CPUs.
local d = tonumber(os.getenv("SOAK_WRK_DELAY_MS") or "10") or 10

function delay()
	return d
end
