# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# The soak test's chart (called by tests/soak/soak.sh):
#   gnuplot -e "out='x.png'; csv='build/soak/soak.csv'; half=5.0; total=10.0" \
#           -e "ra0=..; ra1=..; rb0=..; rb1=..; fa0=..; fa1=..; fb0=..; fb1=.." \
#           -e "subtitle='...'" plot.gp
# csv: one row per sample, a header naming the columns (t_s, a_rss_kib, ...).
# half, total: the half-way mark and the run's length, in minutes. ra0/ra1
# (rb0/rb1): intercept and slope per minute of node-a's (node-b's) VmRSS in
# MiB, fitted over the second half; fa*/fb* the same for open fds. The fits
# are drawn over the second half only, the part the verdict judges.

set terminal pngcairo size 1400,1000 font ",10"
set output out
set datafile separator ","
set datafile columnheaders
set datafile missing "-"
set grid
# The same margins in every panel: the last one has a right axis.
set lmargin 8
set rmargin 8
set key bottom right noenhanced font ",9" opaque
set xlabel "minutes"
set xrange [0:total]
set linetype 1 lc rgb "#1565c0" lw 2
set linetype 2 lc rgb "#e65100" lw 2
set linetype 3 lc rgb "#1565c0" lw 1.5 dt 2
set linetype 4 lc rgb "#e65100" lw 1.5 dt 2
set linetype 5 lc rgb "#2e7d32" lw 1.5
set linetype 6 lc rgb "#c62828" lw 1.5
set arrow 1 from half, graph 0 to half, graph 1 nohead dt 3 lc rgb "#555555"
set label 1 "half-way: the fit starts" at half, graph 0.06 offset 0.5, 0 font ",8"

fit2(x, a, b) = x >= half ? a + b * x : NaN
m(c) = column(c) / 1024.0
min(c) = column(c) / 60.0
set samples 400

set multiplot layout 3,1 title "outrider soak: the node agents under mixed load with faults (".subtitle.")" noenhanced

set title "VmRSS, MiB (dashed: least-squares fit over the second half)"
set yrange [0:*]
plot csv using (min("t_s")):(m("a_rss_kib")) with lines lt 1 title sprintf("node-a (client side) %+.2f MiB/min", ra1), \
     csv using (min("t_s")):(m("b_rss_kib")) with lines lt 2 title sprintf("node-b (mTLS server side) %+.2f MiB/min", rb1), \
     fit2(x, ra0, ra1) lt 3 notitle, fit2(x, rb0, rb1) lt 4 notitle

set title "open file descriptors (/proc/PID/fd)"
plot csv using (min("t_s")):"a_fds" with lines lt 1 title sprintf("node-a %+.1f/min", fa1), \
     csv using (min("t_s")):"b_fds" with lines lt 2 title sprintf("node-b %+.1f/min", fb1), \
     fit2(x, fa0, fa1) lt 3 notitle, fit2(x, fb0, fb1) lt 4 notitle

set title "the load through node-a: HTTP requests/s proxied, and the active connections"
unset label 1
set ytics nomirror
set y2tics
set y2range [0:*]
plot csv using (min("t_s")):"a_http_per_s" with lines lt 5 title "HTTP requests/s", \
     csv using (min("t_s")):"a_active_conns" with lines lt 6 axes x1y2 title "node-a active connections (right axis)"
unset multiplot
