# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# The benchmark's chart (called by tests/bench/bench.sh):
#   gnuplot -e "out='x.png'; base='build/bench/bench'; n=9; subtitle='...'" \
#           -e "has_rps=1; has_p99=1; has_gbps=1; has_cpu=1" plot.gp
# base.{rps,p99,gbps,cpu}.dat: one row per load, one column per scenario
# (the header names them), "?" where a scenario has no figure; has_X = 0
# when X's file has no figure at all (that panel says so).

set terminal pngcairo size 1400,900 font ",10"
set output out
set datafile missing "?"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics
set key top right noenhanced font ",9"
set xtics noenhanced nomirror
set linetype 1 lc rgb "#555555"
set linetype 2 lc rgb "#2e7d32"
set linetype 3 lc rgb "#1565c0"
set linetype 4 lc rgb "#64b5f6"
set linetype 5 lc rgb "#6a1b9a"
set linetype 6 lc rgb "#ce93d8"
set linetype 7 lc rgb "#e65100"
set linetype 8 lc rgb "#ffb74d"
set linetype 9 lc rgb "#000000"

# panel(FILE, TITLE, HAS, LOG): a clustered histogram (LOG: on a log
# scale, as mTLS handshakes dwarf everything else), or "not measured".
panel(f, t, h, log) = sprintf('set title "%s"; ', t) . (h ? \
	(log ? 'set logscale y; set yrange [*:*]; ' : 'unset logscale y; set yrange [0:*]; ') . \
	sprintf("plot for [i=2:n] '%s' using i:xtic(1) title columnheader(i)", f) : \
	'unset logscale y; set yrange [0:1]; set xrange [0:1]; set label 1 "not measured" at graph 0.5, graph 0.5 center; plot 2 notitle; unset label 1; set autoscale x')

set key opaque
set multiplot layout 2,2 title "outrider vs no mesh vs HAProxy sidecars (".subtitle.")" noenhanced
eval panel(base.'.rps.dat', 'requests/s (higher is better)', has_rps, 0)
eval panel(base.'.p99.dat', 'p99 latency, ms, log scale (lower is better)', has_p99, 1)
eval panel(base.'.gbps.dat', 'bulk TCP (iperf3), Gbit/s (higher is better)', has_gbps, 0)
eval panel(base.'.cpu.dat', 'whole-machine CPU s per 1000 requests, log scale (lower is better)', has_cpu, 1)
unset multiplot
